"""The RabbitMQ queue backend: `RabbitQueue` (queue.py) and the parts it is built of.

amqp.py (errors, settling, readiness), topology.py (names, arguments, headers),
publisher.py (confirmed publishing), consumer.py (the prefetching consumer) and dlq.py
(dead letters and depth, on a short-lived raw channel).
"""

from vecpipe.queue.rabbitmq.queue import RabbitQueue

__all__ = ["RabbitQueue"]
