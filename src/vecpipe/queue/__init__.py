"""Durable queues: SQLite in the data dir (sqlite.py) and RabbitMQ (the rabbitmq package)."""
