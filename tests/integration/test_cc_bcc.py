"""CC and BCC headers (RabbitMQ's sender-selected distribution): the
message also goes where the CC and BCC routing keys lead, once per queue;
CC stays in the delivered headers, BCC is removed."""
import pika

from helpers import uid


def test_cc_and_bcc_route_and_bcc_is_removed(ch):
    x = uid("ccx")
    ch.exchange_declare(x, "direct", auto_delete=True)
    qs = {}
    for k in ("k1", "k2", "k3", "k4"):
        qs[k] = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(qs[k], x, k)
    ch.confirm_delivery()
    ch.basic_publish(x, "k1", b"m", pika.BasicProperties(
        headers={"CC": ["k2", "k1"], "BCC": ["k3"], "keep": 1}))
    for k in ("k1", "k2", "k3"):
        m, p, body = ch.basic_get(qs[k], auto_ack=True)
        assert body == b"m", k
        assert p.headers == {"CC": ["k2", "k1"], "keep": 1}, (k, p.headers)
        assert ch.basic_get(qs[k], auto_ack=True)[0] is None  # once per queue
    assert ch.basic_get(qs["k4"], auto_ack=True)[0] is None
