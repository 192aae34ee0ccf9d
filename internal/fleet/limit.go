package fleet

import (
	"context"
	"fmt"
)

// CapError lists the instances a request named that already have as many
// superseded credentials waiting as the store allows (REKEY_MAX_PREVIOUS).
// A request naming any is refused whole; a request for the whole fleet
// leaves them out instead (Item status "refused").
type CapError struct {
	// Max is the cap; IDs the instances at it.
	Max int
	IDs []string
}

func (e *CapError) Error() string {
	return fmt.Sprintf("rotation refused, nothing enqueued: %d instance(s) already have %d superseded credentials waiting for revocation, the most allowed (REKEY_MAX_PREVIOUS): %s; "+
		"rotate them after their old credentials are revoked", len(e.IDs), e.Max, preview(e.IDs))
}

// checkCap refuses the request when any instance is at the store's cap on
// waiting credentials. The claim enforces the cap again, atomically; this
// read only keeps a request from being half-applied in the common case.
func (p *Producer) checkCap(ctx context.Context, ids []string) error {
	limit := p.store.MaxPrevious()
	if limit <= 0 {
		return nil
	}
	capped := CapError{Max: limit}
	for start := 0; start < len(ids); start += checkPage {
		page := ids[start:min(start+checkPage, len(ids))]
		counts, err := p.store.PreviousCounts(ctx, page)
		if err != nil {
			return err
		}
		for i, n := range counts {
			if n >= int64(limit) {
				capped.IDs = append(capped.IDs, page[i])
			}
		}
	}
	if len(capped.IDs) > 0 {
		return &capped
	}
	return nil
}
