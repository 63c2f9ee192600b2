from fbuild_graph.cli import run

run()
