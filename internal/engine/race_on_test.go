//go:build race

package engine

// raceDetector: the race detector slows the engine several times over;
// TestSustainedIntake measures rates and does not run under it.
const raceDetector = true
