package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/version"
)

// clientFlags are the association flags shared by the client commands.
type clientFlags struct {
	callingAE, calledAE string
	timeout             time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.callingAE, "ae-title", "ESPNODE", "our (calling) AE title")
	fs.StringVar(&c.calledAE, "called-ae", "ANY-SCP", "the peer's (called) AE title")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "timeout for connecting and for each response")
}

func (c *clientFlags) config(contexts []dimse.PresentationContextRQ) dimse.ClientConfig {
	return dimse.ClientConfig{
		CallingAE: c.callingAE, CalledAE: c.calledAE, Contexts: contexts,
		Timeouts:                  dimse.Timeouts{ARTIM: c.timeout, DIMSE: c.timeout},
		ImplementationClassUID:    version.ImplementationClassUID,
		ImplementationVersionName: version.ImplementationVersionName(),
	}
}

func runEcho(ctx context.Context, env *cliEnv, args []string) error {
	fs := env.newFlagSet("echo", "usage: espnode echo [--ae-title AET] [--called-ae AET] HOST:PORT")
	var cf clientFlags
	cf.register(fs)
	if err := parseArgs(fs, args, 1, 1); err != nil {
		return err
	}
	addr := fs.Arg(0)
	start := time.Now()
	c, err := dimse.Dial(ctx, addr, cf.config([]dimse.PresentationContextRQ{{
		AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{dcm.ImplicitVRLittleEndian},
	}}))
	if err != nil {
		return err
	}
	st, err := c.Echo(ctx)
	if err != nil {
		_ = c.Abort()
		return err
	}
	if rerr := c.Release(ctx); rerr != nil {
		fmt.Fprintf(env.stderr, "espnode echo: release: %v\n", rerr)
	}
	if st.Code != dimse.StatusSuccess {
		return fmt.Errorf("C-ECHO to %s: status %v", addr, st)
	}
	fmt.Fprintf(env.stdout, "C-ECHO to %s (%s): success in %v\n", addr, cf.calledAE, time.Since(start).Round(time.Millisecond))
	return nil
}
