"""x-delivery-limit on classic queues (RabbitMQ has it on quorum queues):
a message returned (nack/reject with requeue, or its channel closed) more
than the limit is dead-lettered with reason delivery_limit, and redelivered
copies carry x-delivery-count."""
import pika
import pytest

from helpers import uid


def test_delivery_limit_dead_letters_with_reason(broker, ch):
    if broker.external:
        pytest.skip("RabbitMQ has x-delivery-limit on quorum queues only")
    dlq = uid("dlq")
    q = uid("limited")
    ch.queue_declare(dlq, exclusive=True)
    ch.queue_declare(q, exclusive=True, arguments={
        "x-delivery-limit": 2, "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dlq})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"poison", pika.BasicProperties(headers={"app": "x"}))
    counts = []
    for _ in range(3):
        m, p, body = ch.basic_get(q, auto_ack=False)
        assert body == b"poison"
        counts.append((p.headers or {}).get("x-delivery-count"))
        ch.basic_nack(m.delivery_tag, requeue=True)
    # Delivered 3 times (limit 2: returned twice, the third return is one
    # too many), with x-delivery-count 1 and 2 on the redeliveries.
    assert counts == [None, 1, 2]
    assert ch.basic_get(q, auto_ack=True)[0] is None
    m, p, body = ch.basic_get(dlq, auto_ack=True)
    assert body == b"poison"
    death = p.headers["x-death"][0]
    assert death["reason"] == "delivery_limit" and death["queue"] == q
    assert p.headers["app"] == "x"
