// Package capture is riposte's capture integration.
package capture
