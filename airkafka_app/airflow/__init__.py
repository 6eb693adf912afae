"""What runs in Airflow's interpreter: the executor, the provider, its CLI and the task log handler.

Faust-free: Airflow and faust-streaming cannot share an environment.
"""
