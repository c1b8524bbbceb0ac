"""RQ jobs and the worker process; jobs take ids and primitives and call one service."""
