package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/event"
)

// commandCounter counts the database commands the services send, by database and
// command: round trips per order are a cost the machine's load does not change.
type commandCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func newCommandCounter() *commandCounter { return &commandCounter{counts: map[string]int{}} }

func (c *commandCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		// The bench's databases are bench_<run>_<service>; show the service.
		db := e.DatabaseName[strings.LastIndexByte(e.DatabaseName, '_')+1:]
		key := db + " " + e.CommandName
		if v, ok := e.Command.Index(0).Value().StringValueOK(); ok {
			key += " " + v // the collection
		}
		c.mu.Lock()
		c.counts[key]++
		c.mu.Unlock()
	}}
}

// reset returns the counts so far and starts again from zero.
func (c *commandCounter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := c.counts
	c.counts = map[string]int{}
	return counts
}

// printCommands writes the commands per order, by database and command.
func printCommands(w io.Writer, counts map[string]int, orders int) {
	total := 0
	for _, n := range counts {
		total += n
	}
	fmt.Fprintf(w, "           database round trips per order: %.2f\n", float64(total)/float64(orders))
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(w, "             %-40s %6.2f\n", k, float64(counts[k])/float64(orders))
	}
}
