#pragma once
namespace fl { void uiBegin(); }
