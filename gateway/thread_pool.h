/*
 * thread_pool.h - a small pool of threads for blocking work (porter_run_blocking).
 *
 * Interface: thread_pool_start makes the pool for one event loop; thread_pool_submit runs
 * work(arg) on a pool thread and then complete(job_arg, result) on the loop thread (through a
 * libevent event activated from the pool thread; evthread_use_pthreads must have been called).
 * thread_pool_stop waits for queued and running work to finish. Fatal: failure to create
 * threads at start. The pool owns its queue; the caller owns work/complete arguments.
 */
#ifndef PORTER_THREAD_POOL_H
#define PORTER_THREAD_POOL_H

struct event_base;
struct thread_pool;

typedef int (*thread_pool_work_fn)(void *arg);
typedef void (*thread_pool_complete_fn)(void *arg, int result);

struct thread_pool *thread_pool_start(struct event_base *base, int threads);
void thread_pool_submit(struct thread_pool *pool, thread_pool_work_fn work, void *work_arg,
                        thread_pool_complete_fn complete, void *complete_arg);
/* thread_pool_stop - finish all submitted work (completions run), then free the pool */
void thread_pool_stop(struct thread_pool *pool);

#endif
