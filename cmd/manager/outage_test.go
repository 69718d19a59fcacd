package main

// A manager run as config/manager and the chart run it (--leader-elect) rides out an API
// server outage of half a minute: it does not give up its Lease and exit.

import (
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// proxy forwards TCP to target, with a delay per chunk sent upstream; down() cuts every
// connection and refuses new ones until up().
type proxy struct {
	target string
	l      net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	isDown bool
	delay  time.Duration
}

func newProxy(t *testing.T, target string, delay time.Duration) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, l: l, delay: delay}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.isDown {
				p.mu.Unlock()
				_ = c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				_ = c.Close()
				continue
			}
			p.conns = append(p.conns, c, u)
			d := p.delay
			p.mu.Unlock()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if d > 0 {
							time.Sleep(d)
						}
						if _, werr := u.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				_ = u.Close()
				_ = c.Close()
			}()
			go func() { _, _ = io.Copy(c, u); _ = c.Close(); _ = u.Close() }()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); p.down() })
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *proxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = false
}

func (c *cluster) via(p *proxy) *cluster {
	c2 := *c
	c2.host = "https://" + p.addr()
	return &c2
}

func hostPort(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	return strings.TrimSuffix(h, "/")
}

func makeNamespace(t *testing.T, c *cluster, name string) {
	t.Helper()
	if err := c.admin.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

func makeShop(t *testing.T, c *cluster, ns, name string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile("../../config/samples/commerce_v1alpha1_shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetNamespace(ns)
	u.SetName(name)
	if err := c.admin.Create(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(c *cluster, t *testing.T, o client.Object, ns, name string) bool {
	return c.admin.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, o) == nil
}

var addrOf = map[*managerProcess]string{}

func holderLog(p *managerProcess) bool {
	if strings.Contains(p.log.String(), "successfully acquired lease") {
		return true
	}
	addr, ok := addrOf[p]
	if !ok {
		return false
	}
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = conn.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return regexp.MustCompile(`leader_election_master_status\{name="[^"]*"\} 1`).Match(b)
}

// TestChaosOutageLeaderElect: the manager as config/manager and the chart run it
// (--leader-elect) through a 25 s API server outage.
func TestChaosOutageLeaderElect(t *testing.T) {
	c := startCluster(t)
	bin := buildManager(t)
	px := newProxy(t, hostPort(c.host), 0)
	addr := freeAddress(t)
	m := startManager(t, bin, c.via(px), "--leader-elect", "--leader-election-namespace="+managerNamespace,
		"--metrics-bind-address="+addr, "--metrics-secure=false")
	addrOf[m] = addr
	waitFor(t, time.Minute, "leading", func() bool { return holderLog(m) })
	makeNamespace(t, c, "ns1")
	makeShop(t, c, "ns1", "demo")
	waitFor(t, time.Minute, "gateway", func() bool { return exists(c, t, &appsv1.Deployment{}, "ns1", "demo-gateway") })
	px.down()
	t0 := time.Now()
	select {
	case <-m.exited:
		t.Errorf("the manager exited %v into a 25 s API server outage: %v", time.Since(t0).Round(time.Second), m.err)
		lines := strings.Split(m.log.String(), "\n")
		for _, l := range lines[max(0, len(lines)-5):] {
			t.Logf("log: %.300s", l)
		}
	case <-time.After(25 * time.Second):
	}
	px.up()
	time.Sleep(5 * time.Second)
}
