#pragma once
#include "fl/ui.h"
