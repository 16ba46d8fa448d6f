"""The runtime every dataflow service shares (``edml serve``, ``edml evaluate``).

It checks the topics, serves the metrics, sets up the recovery folder, runs the flow the caller
built and stops it on SIGTERM/SIGINT; ``cluster`` starts several such processes on one host.
It sits below ``edml.scoring``, which runs the scorer with it, and knows nothing of any flow.
"""
