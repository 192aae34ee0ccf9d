// Package e2e is rekey's end-to-end acceptance suite. It holds no code of
// its own, only tests.
//
// The tests run rekey the way it runs in production: the asynq server of
// internal/worker (in process, or the built `rekey worker` binary as a
// subprocess), a real Redis from internal/redistest, the faithful fake
// Heroku and the demo issuer from internal/sandbox, both over real HTTP,
// reached through rekey's own Heroku client and its signed HTTP issuer.
//
// Together they prove the invariants of docs/design.md on whole runs rather than
// single steps:
//   - a fleet of V3 and V1 instances, some in Private Spaces, is rotated
//     with one Heroku call per rotation; each config ends up holding the
//     instance's current credential (I1), and every old credential,
//     including the one minted at provisioning, is revoked after its grace
//     and not before (I2, I3);
//   - a worker killed mid-rotation loses nothing: another worker finishes
//     every rotation, no rotation mints twice and Heroku sees at most one
//     config change per rotation (I6);
//   - Heroku's 429, 5xx, timeouts, expired tokens and 404, and the issuer's
//     5xx and 4xx, each end as the design says: retried, or failed for good
//     with the pending credential discarded and the current one kept; being
//     rate limited never uses up a task's retries;
//   - bad input (an undecodable payload, an unknown instance, bad
//     configuration) is refused at once with a sentence that names it;
//   - secret values never appear in logs, task payloads, results, error
//     strings or Redis in clear (I5).
package e2e
