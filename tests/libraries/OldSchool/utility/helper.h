#pragma once
#ifdef __cplusplus
extern "C" {
#endif
void helperInit(void);
#ifdef __cplusplus
}
#endif
