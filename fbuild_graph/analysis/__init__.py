"""Analysis: a build read back from its TSVs, its pictures, the terminal report."""
