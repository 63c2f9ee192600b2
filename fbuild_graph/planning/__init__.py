"""Planning: the action DAG, the steps Dask schedules, where every file goes, the ninja export. Pure."""
