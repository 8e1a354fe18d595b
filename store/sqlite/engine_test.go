package sqlite

import (
	"testing"

	"github.com/espnode/espnode/store/indextest"
)

// TestContract runs the seams' contract (store/indextest), which store/postgres runs too.
func TestContract(t *testing.T) {
	indextest.Run(t, func(t *testing.T) indextest.Engine { return openEngine(t, t.TempDir()) })
}
