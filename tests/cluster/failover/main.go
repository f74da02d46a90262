// failover: an amqp091-go application's reconnect loop against a cluster,
// for tests/integration/test_cluster.py (test_go_client_failover).
//
//	failover [-n 3000] [-queue NAME] [-rate 300] [-window 100]
//	         [-prefetch 100] [-timeout 60s] URL...
//
// Does what a real application's reconnect loop does: dials the first
// reachable URL (in the order given), declares a durable quorum queue
// (x-queue-type quorum), publishes -n persistent messages whose bodies are
// their sequence numbers with publisher confirms (at most -window
// unconfirmed at a time, -rate fresh messages a second, 0 for no limit),
// and consumes them on a second channel of the same connection with manual
// acks.  When the connection or one of its channels closes (NotifyClose)
// it moves on to the next URL (round robin; a URL that cannot be dialled
// is skipped) and resumes there: it declares the queue again, republishes
// every message that was nacked or whose confirm had not arrived, and
// consumes again (deliveries not acked on the lost connection come back).
// It stops when every message is confirmed and received, or at -timeout.
//
// stdout, one event a line, for a test to follow while it runs:
//
//	connected URL                  a connection is open (before declaring)
//	dial-failed URL: ERROR
//	lost URL: REASON               that connection is given up
//	progress confirmed=C received=R
//	summary {JSON}                 last line
//
// The summary: n, confirmed (distinct messages confirmed), received
// (distinct messages delivered), deliveries, duplicates (deliveries -
// received), redelivered (deliveries flagged redelivered), lost (confirmed
// but never received; lost_sample lists up to 20), unconfirmed, published
// (publishes including republishes), republished, nacked, addresses (the
// URL of every connection, in order), reconnects (connections - 1),
// dial_failures, elapsed_s, done.  Exit status 0 if done and nothing was
// lost, 1 otherwise, 2 for bad usage.
//
// Built by the test with Debian's Go and golang-github-rabbitmq-amqp091-go-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=/tmp/gocache go build -o failover .
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type state struct {
	n, rate, window, prefetch int
	queue                     string
	deadline                  time.Time
	start                     time.Time

	confirmed  []bool
	received   []int // deliveries per message
	nConfirmed int
	nReceived  int
	deliveries int
	redeliv    int
	next       int   // next fresh message to publish
	resend     []int // nacked or unconfirmed on a lost connection
	published  int
	republish  int
	nacked     int
	addresses  []string
	dialFails  int
	lastReport time.Time
}

func (s *state) done() bool { return s.nConfirmed == s.n && s.nReceived == s.n }

func (s *state) progress(force bool) {
	if force || time.Since(s.lastReport) >= 200*time.Millisecond {
		fmt.Printf("progress confirmed=%d received=%d\n", s.nConfirmed, s.nReceived)
		s.lastReport = time.Now()
	}
}

// errDone ends a session because the work is finished.
var errDone = errors.New("done")
var errDeadline = errors.New("deadline reached")

// session runs one connection to url until it is lost (returns why) or the
// work is done (errDone) or the deadline passes (errDeadline).
func (s *state) session(url string) error {
	var rawMu sync.Mutex
	var raw net.Conn
	dial := amqp.DefaultDial(3 * time.Second)
	cfg := amqp.Config{
		Heartbeat: 2 * time.Second,
		Locale:    "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := dial(network, addr)
			rawMu.Lock()
			raw = c
			rawMu.Unlock()
			return c, err
		},
	}
	conn, err := amqp.DialConfig(url, cfg)
	if err != nil {
		s.dialFails++
		fmt.Printf("dial-failed %s: %v\n", url, err)
		return nil
	}
	s.addresses = append(s.addresses, url)
	fmt.Printf("connected %s\n", url)
	// A broker that stops answering must not hold an RPC (declare, qos,
	// consume) or a blocked publish past the deadline: closing the socket
	// fails them.
	watchdog := time.AfterFunc(time.Until(s.deadline), func() {
		rawMu.Lock()
		raw.Close()
		rawMu.Unlock()
	})
	defer watchdog.Stop()
	defer conn.Close()
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))

	pch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	args := amqp.Table{"x-queue-type": "quorum"}
	if _, err := pch.QueueDeclare(s.queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("queue.declare: %w", err)
	}
	if err := pch.Confirm(false); err != nil {
		return fmt.Errorf("confirm.select: %w", err)
	}
	confirms := pch.NotifyPublish(make(chan amqp.Confirmation, s.window+1))
	pchClosed := pch.NotifyClose(make(chan *amqp.Error, 1))

	cch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	if err := cch.Qos(s.prefetch, 0, false); err != nil {
		return fmt.Errorf("basic.qos: %w", err)
	}
	deliveries, err := cch.Consume(s.queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("basic.consume: %w", err)
	}
	cchClosed := cch.NotifyClose(make(chan *amqp.Error, 1))

	inflight := map[uint64]int{} // delivery tag -> message
	// Whatever was in flight here is republished on the next connection.
	defer func() {
		for _, m := range inflight {
			if !s.confirmed[m] {
				s.resend = append(s.resend, m)
			}
		}
	}()
	ticker := time.NewTicker(5 * time.Millisecond)
	defer ticker.Stop()
	fresh := 0 // fresh messages published in this session, for -rate
	t0 := time.Now()
	for {
		if s.done() {
			return errDone
		}
		if time.Now().After(s.deadline) {
			return errDeadline
		}
		for len(inflight) < s.window {
			m, again := -1, len(s.resend) > 0
			if again {
				m = s.resend[0]
			} else if s.next < s.n && (s.rate <= 0 ||
				float64(fresh) < time.Since(t0).Seconds()*float64(s.rate)) {
				m = s.next
			}
			if m < 0 {
				break
			}
			if s.confirmed[m] { // confirmed in the meantime: a duplicate is not needed
				s.resend = s.resend[1:]
				continue
			}
			tag := pch.GetNextPublishSeqNo()
			inflight[tag] = m
			err := pch.Publish("", s.queue, false, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent,
				Body:         []byte(strconv.Itoa(m)),
			})
			if err != nil {
				delete(inflight, tag)
				return fmt.Errorf("publish: %w", err)
			}
			s.published++
			if again {
				s.resend = s.resend[1:]
				s.republish++
			} else {
				s.next++
				fresh++
			}
		}
		select {
		case c, ok := <-confirms:
			if !ok {
				return errors.New("confirms closed")
			}
			m, known := inflight[c.DeliveryTag]
			if !known {
				continue
			}
			delete(inflight, c.DeliveryTag)
			if c.Ack {
				if !s.confirmed[m] {
					s.confirmed[m] = true
					s.nConfirmed++
				}
			} else {
				s.nacked++
				s.resend = append(s.resend, m)
			}
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("deliveries closed")
			}
			s.deliveries++
			if d.Redelivered {
				s.redeliv++
			}
			m, err := strconv.Atoi(string(d.Body))
			if err == nil && m >= 0 && m < s.n {
				if s.received[m] == 0 {
					s.nReceived++
				}
				s.received[m]++
			} else {
				fmt.Printf("unexpected body %q\n", d.Body)
			}
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("basic.ack: %w", err)
			}
		case e := <-connClosed:
			return fmt.Errorf("connection closed: %v", e)
		case e := <-pchClosed:
			return fmt.Errorf("publishing channel closed: %v", e)
		case e := <-cchClosed:
			return fmt.Errorf("consuming channel closed: %v", e)
		case <-ticker.C:
		}
		s.progress(false)
	}
}

func main() {
	s := &state{}
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.IntVar(&s.n, "n", 3000, "messages to publish")
	flag.StringVar(&s.queue, "queue", fmt.Sprintf("failover-%d", os.Getpid()), "quorum queue name")
	flag.IntVar(&s.rate, "rate", 300, "fresh messages published a second (0: no limit)")
	flag.IntVar(&s.window, "window", 100, "unconfirmed publishes at most")
	flag.IntVar(&s.prefetch, "prefetch", 100, "consumer prefetch count")
	flag.Parse()
	urls := flag.Args()
	if len(urls) == 0 || s.n <= 0 || s.window <= 0 {
		fmt.Fprintln(os.Stderr, "usage: failover [flags] URL...")
		flag.PrintDefaults()
		os.Exit(2)
	}
	s.start = time.Now()
	s.deadline = s.start.Add(*timeout)
	s.confirmed = make([]bool, s.n)
	s.received = make([]int, s.n)

	for i := 0; ; i = (i + 1) % len(urls) {
		err := s.session(urls[i])
		if err == errDone || err == errDeadline || time.Now().After(s.deadline) {
			break
		}
		if err != nil {
			fmt.Printf("lost %s: %v\n", urls[i], err)
		} else if (i+1)%len(urls) == 0 {
			time.Sleep(200 * time.Millisecond) // no URL could be dialled
		}
	}
	s.progress(true)

	lost := []int{}
	for m := 0; m < s.n; m++ {
		if s.confirmed[m] && s.received[m] == 0 {
			lost = append(lost, m)
		}
	}
	sample := lost
	if len(sample) > 20 {
		sample = sample[:20]
	}
	reconnects := len(s.addresses) - 1
	if reconnects < 0 {
		reconnects = 0
	}
	sum := map[string]interface{}{
		"n":             s.n,
		"confirmed":     s.nConfirmed,
		"received":      s.nReceived,
		"deliveries":    s.deliveries,
		"duplicates":    s.deliveries - s.nReceived,
		"redelivered":   s.redeliv,
		"lost":          len(lost),
		"lost_sample":   sample,
		"unconfirmed":   s.n - s.nConfirmed,
		"published":     s.published,
		"republished":   s.republish,
		"nacked":        s.nacked,
		"addresses":     s.addresses,
		"reconnects":    reconnects,
		"dial_failures": s.dialFails,
		"elapsed_s":     time.Since(s.start).Seconds(),
		"done":          s.done(),
	}
	out, _ := json.Marshal(sum)
	fmt.Printf("summary %s\n", out)
	if !s.done() || len(lost) > 0 {
		os.Exit(1)
	}
}
