package engine

import "time"

// Config tunes the engine. Zero values take the defaults.
type Config struct {
	// Workers process alerts; alerts of one container go to one worker.
	Workers int `yaml:"workers"` // default 4
	// Batch is how many alerts one claim takes from the inbox.
	Batch int `yaml:"batch"` // default 1024
	// Lease is how long a claimed alert stays claimed before another
	// process may take it (a crashed one never finishes it).
	Lease time.Duration `yaml:"lease"` // default 2m
	// Poll is how often an idle engine looks at the inbox when nobody
	// wakes it.
	Poll time.Duration `yaml:"poll"` // default 1s
	// ActionTimeout bounds one action run.
	// It is a backstop: responders bound their own calls more tightly
	// (Docker API 30s, a snapshot 10m).
	ActionTimeout time.Duration `yaml:"action_timeout"` // default 15m
	// DryRun plans and journals everything and executes nothing.
	DryRun bool `yaml:"dry_run"`
	// BlastRadius: at most Max destructive actions per Window; beyond it
	// they are held for approval. Max 0: no limit.
	BlastRadius BlastRadius `yaml:"blast_radius"`
	// Approvers may approve actions held by the blast-radius limit (Slack
	// user ids or @groups). Playbook approvals name their own.
	Approvers []string `yaml:"approvers"`
	// ApprovalTimeout is how long a blast-radius hold waits (then aborts).
	ApprovalTimeout time.Duration `yaml:"approval_timeout"` // default 15m
	// Outbox delivery.
	Outbox OutboxConfig `yaml:"outbox"`
}

// BlastRadius limits destructive actions per window.
type BlastRadius struct {
	Max    int           `yaml:"max"`
	Window time.Duration `yaml:"window"` // default 10m
}

// OutboxConfig tunes notification delivery.
type OutboxConfig struct {
	Workers     int           `yaml:"workers"`      // default 2
	Lease       time.Duration `yaml:"lease"`        // default 1m
	BaseBackoff time.Duration `yaml:"base_backoff"` // default 1s
	MaxBackoff  time.Duration `yaml:"max_backoff"`  // default 5m
	// MaxAttempts before a message is dead (journaled notification.failed).
	MaxAttempts int `yaml:"max_attempts"` // default 20
}

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Batch <= 0 {
		c.Batch = 1024
	}
	if c.Lease <= 0 {
		c.Lease = 2 * time.Minute
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.ActionTimeout <= 0 {
		c.ActionTimeout = 15 * time.Minute
	}
	if c.BlastRadius.Window <= 0 {
		c.BlastRadius.Window = 10 * time.Minute
	}
	if c.ApprovalTimeout <= 0 {
		c.ApprovalTimeout = 15 * time.Minute
	}
	if c.Outbox.Workers <= 0 {
		c.Outbox.Workers = 2
	}
	if c.Outbox.Lease <= 0 {
		c.Outbox.Lease = time.Minute
	}
	if c.Outbox.BaseBackoff <= 0 {
		c.Outbox.BaseBackoff = time.Second
	}
	if c.Outbox.MaxBackoff <= 0 {
		c.Outbox.MaxBackoff = 5 * time.Minute
	}
	if c.Outbox.MaxAttempts <= 0 {
		c.Outbox.MaxAttempts = 20
	}
	return c
}
