// Package docker is riposte's docker integration.
package docker
