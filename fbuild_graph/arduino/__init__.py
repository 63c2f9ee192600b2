"""The Arduino front end: platforms and boards, installs, the toolchain, sketches and their preprocessing, libraries and their detection, the recipes every command comes from."""
