package httpapi_test

import (
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
