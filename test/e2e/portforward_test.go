//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// podForward reaches the pods selected by a label set through a port-forward made
// with client-go, as `kubectl port-forward` does: from a free port on 127.0.0.1 to
// one Ready pod. It works wherever the API server does (kind, the local cluster),
// with no route into the cluster. The forward is re-made when its pod is no longer
// Ready (rolled out, deleted, terminating) or the stream to it broke.
type podForward struct {
	namespace string
	selector  map[string]string
	port      int

	mu      sync.Mutex
	current *forward
}

// forward is one running port-forward to one pod.
type forward struct {
	pod    string
	url    string
	cancel context.CancelFunc
	done   chan struct{} // closed when the forward ended
}

func newPodForward(namespace string, selector map[string]string, port int) *podForward {
	return &podForward{namespace: namespace, selector: selector, port: port}
}

// URL returns the base URL of a forward to a Ready pod, making one when needed.
func (f *podForward) URL(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ready, err := readyPodNames(ctx, f.namespace, f.selector)
	if err != nil {
		return "", err
	}
	if cur := f.current; cur != nil {
		select {
		case <-cur.done:
		default:
			if slices.Contains(ready, cur.pod) {
				return cur.url, nil
			}
		}
		cur.stop()
		f.current = nil
	}
	if len(ready) == 0 {
		return "", fmt.Errorf("no Ready pod with labels %v in %s", f.selector, f.namespace)
	}
	fw, err := f.open(ctx, ready[0])
	if err != nil {
		return "", err
	}
	f.current = fw
	return fw.url, nil
}

// Close stops the forward.
func (f *podForward) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current != nil {
		f.current.stop()
		f.current = nil
	}
}

// open starts a port-forward to pod on a free local port and waits until it listens.
func (f *podForward) open(ctx context.Context, pod string) (*forward, error) {
	transport, upgrader, err := spdy.RoundTripperFor(restCfg)
	if err != nil {
		return nil, err
	}
	target := clientset.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(f.namespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, target)

	// The forward outlives the request that made it: its own context ends it.
	fctx, cancel := context.WithCancel(context.Background())
	readyCh := make(chan struct{})
	pf, err := portforward.NewOnAddressesWithContext(fctx, dialer, []string{"127.0.0.1"},
		[]string{fmt.Sprintf("0:%d", f.port)}, readyCh, io.Discard, GinkgoWriter)
	if err != nil {
		cancel()
		return nil, err
	}
	fw := &forward{pod: pod, cancel: cancel, done: make(chan struct{})}
	errCh := make(chan error, 1)
	go func() {
		defer close(fw.done)
		err := pf.ForwardPorts()
		if err != nil && !errors.Is(fctx.Err(), context.Canceled) {
			fmt.Fprintf(GinkgoWriter, "port-forward to pod %s ended: %v\n", pod, err)
		}
		errCh <- err
	}()
	select {
	case <-readyCh:
	case <-fw.done:
		cancel()
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", f.namespace, pod, <-errCh)
	case <-ctx.Done():
		fw.stop()
		return nil, ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err != nil {
		fw.stop()
		return nil, err
	}
	fw.url = fmt.Sprintf("http://127.0.0.1:%d", ports[0].Local)
	fmt.Fprintf(GinkgoWriter, "port-forward %s -> pod %s/%s:%d\n", fw.url, f.namespace, pod, f.port)
	return fw, nil
}

// stop ends the forward and waits until its listener is closed.
func (fw *forward) stop() {
	fw.cancel()
	<-fw.done
}
