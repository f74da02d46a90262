// gotls: an amqp091-go client over TLS, for tests/integration/test_tls.py.
//
//	gotls URL CAFILE [CERT KEY]
//
// Dials URL (amqps://...) trusting CAFILE (and presenting CERT/KEY with
// EXTERNAL auth when given), declares a queue, publishes with confirms,
// gets the messages back and prints "ok N".
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	amqp "github.com/rabbitmq/amqp091-go"
)

func fail(err error) {
	fmt.Println("error:", err)
	os.Exit(1)
}

func main() {
	ca, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	config := amqp.Config{TLSClientConfig: cfg}
	if len(os.Args) > 4 {
		cert, err := tls.LoadX509KeyPair(os.Args[3], os.Args[4])
		if err != nil {
			fail(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		config.SASL = []amqp.Authentication{&amqp.ExternalAuth{}}
	}
	conn, err := amqp.DialConfig(os.Args[1], config)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		fail(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		fail(err)
	}
	if err := ch.Confirm(false); err != nil {
		fail(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 100))
	const n = 50
	for i := 0; i < n; i++ {
		body := make([]byte, i*1000)
		if err := ch.Publish("", q.Name, false, false, amqp.Publishing{Body: body}); err != nil {
			fail(err)
		}
	}
	for i := 0; i < n; i++ {
		if c := <-confirms; !c.Ack {
			fail(fmt.Errorf("nack %d", c.DeliveryTag))
		}
	}
	got := 0
	for {
		m, ok, err := ch.Get(q.Name, true)
		if err != nil {
			fail(err)
		}
		if !ok {
			break
		}
		if len(m.Body) != got*1000 {
			fail(fmt.Errorf("message %d has %d bytes", got, len(m.Body)))
		}
		got++
	}
	fmt.Println("ok", got)
}
