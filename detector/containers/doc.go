// Package containers enriches container ids with what the Docker API knows:
// name, image repository and tag, labels, declared ports and the main pid.
//
// A Cache is filled by listing the running containers when Run starts and
// kept fresh by Docker's event stream (start, rename, destroy), so that an
// exec in a container that just started is usually already known; a miss
// inspects the container once (concurrent misses for the same id share one
// call) and caches the answer, negative answers for a short while.
//
// An id Docker does not know is asked of the Resolvers given to New, in
// order (the containerd integration resolves the containers of a
// Kubernetes node from containerd's labels); their answers are cached the
// same way. Docker's event stream keeps only Docker's containers fresh.
//
// A Cache is safe for concurrent use. With a nil API it knows nothing and
// Get returns only the id. Run blocks until its context ends and returns
// nil then; it reconnects to the event stream on errors.
package containers
