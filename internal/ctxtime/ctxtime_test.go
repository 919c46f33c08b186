package ctxtime

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSleep(t *testing.T) {
	assert.NoError(t, Sleep(context.Background(), time.Millisecond))
	assert.True(t, SleepOK(context.Background(), 0))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled, "a cancelled context ends an hour-long wait")
	assert.False(t, SleepOK(ctx, 0))
}
