// Package webhook is riposte's webhook integration.
package webhook
