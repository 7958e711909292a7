"""The fleet: many jobs at once.

A batch (``batch.py``) reads jobs from files, stdin or S3 (``sources.py``); a queue worker
(``worker.py``) takes them from SQS (``messages.py``: what a message holds and what the worker
reports). Both run each job through ``jobs.py`` (one job, one frozen result), in a process of
its own when asked (``childprocess.py``), draw a batch's preview sheets (``previews.py``) and show
an operator how it goes (``metrics.py``, ``status.py``: /metrics, /healthz, /readyz).

Its modules are imported by name (``from pipeline.fleet.batch import process_batch``); the
package root re-exports the library's fleet API (``from pipeline import process_batch``).
"""

__all__: list[str] = []
