#pragma once
void brokenInit();
