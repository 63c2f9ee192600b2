"""The resident build service (`compile-many --daemon`): one process per user and installed package that keeps
the imports, the local cluster and what was parsed warm between builds. place, protocol and client use the
standard library only: the console entry decides through them, before anything heavy is imported."""
