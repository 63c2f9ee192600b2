from fbuild_graph.launch import run

run()
