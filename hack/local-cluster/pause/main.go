// Command pause is the sandbox ("pause") container of the local cluster's pods: it holds
// the pod's namespaces open until it is told to stop. No registry is reachable, so the
// usual registry.k8s.io/pause image is replaced by this program, built from source like
// every other part of the local cluster.
//
// As the first process of a pod that shares its process namespace it is the parent of
// orphans, so it reaps every child that exits, as the C pause program does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every child that has exited, without blocking on those still running.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
