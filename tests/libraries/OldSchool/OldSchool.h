#pragma once
void oldSchoolBegin();
