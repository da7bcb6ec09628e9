/* warm.h: warm borg servers behind core.spawn. Internal, not public API.
 *
 * A pool keeps, per borg program, Python servers that have imported borg
 * and run its self-test once; each call is then a child forked by the
 * server (see src/warm.py) instead of a new interpreter. */
#ifndef BORGLUA_WARM_H
#define BORGLUA_WARM_H

#include <stdint.h>

#include <uv.h>

typedef struct warm_pool warm_pool;

/* Called once when a warm child has ended: exit status, or the number of
 * the signal that killed it (then status is 0), as libuv's exit_cb. */
typedef void (*warm_exit_fn)(void *owner, int64_t status, int term_signal);

/* Return a new pool on loop, or NULL when out of memory. */
warm_pool *borglua__warm_new(uv_loop_t *loop);

/* Start the program of opt through a warm server, with the same argv,
 * environment, directory and stdio plan that uv_spawn would use. Returns
 * 1 and sets *pid when a server started it: the pipes of UV_CREATE_PIPE
 * slots are then open, and on_exit(owner, ...) runs when it ends.
 * Returns 0 when the caller must run it with uv_spawn; *reason is then a
 * message for a debug log line, or NULL when warm mode did not apply. */
int borglua__warm_spawn(warm_pool *pool, uv_process_options_t *opt,
                        warm_exit_fn on_exit, void *owner, int *pid,
                        const char **reason);

/* Stop every server and free the pool once its handles are closed. Call
 * it after the last warm child has ended, before closing the loop. */
void borglua__warm_close(warm_pool *pool);

#endif
