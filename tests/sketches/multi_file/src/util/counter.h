#pragma once
void counterTick();
