// Package slack is riposte's slack integration.
package slack
