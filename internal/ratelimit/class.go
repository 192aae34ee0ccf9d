package ratelimit

import "context"

// Class is the priority of a Heroku call. Every class spends the same budget
// at the same rate; they differ in how much of the burst they may take.
type Class uint8

const (
	// Background is scheduled and bulk work, and the default. It may use the
	// whole rate but never the last Params.Reserve tokens of the burst.
	Background Class = iota
	// Interactive is a customer's button or an operator's single rotation.
	// It may take the reserve, and is served before queued Background calls.
	Interactive

	numClasses = 2
)

// dispatchOrder is the order in which a process serves its queued callers.
var dispatchOrder = [numClasses]Class{Interactive, Background}

// Classes returns every Class, in the order a process serves them.
func Classes() []Class {
	all := dispatchOrder
	return all[:]
}

// String returns the class's name, fit for a metric label.
func (c Class) String() string {
	if c == Interactive {
		return "interactive"
	}
	return "background"
}

type classKey struct{}

// WithClass returns a context whose Heroku calls Wait as class c.
func WithClass(ctx context.Context, c Class) context.Context {
	return context.WithValue(ctx, classKey{}, c)
}

// ClassFrom returns the class WithClass stored in ctx, or Background.
func ClassFrom(ctx context.Context) Class {
	if c, ok := ctx.Value(classKey{}).(Class); ok && c == Interactive {
		return Interactive
	}
	return Background
}
