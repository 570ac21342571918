"""Demo Celery tasks run by the worker fleet behind the RabbitMQ cluster."""

from .celery import app

__version__ = "0.1.0"
__all__ = ["__version__", "app"]
