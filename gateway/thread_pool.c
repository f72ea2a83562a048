/*
 * thread_pool.c - run blocking work off the event loop, complete it on the loop (see
 * thread_pool.h). Each job carries its own libevent event, created on the loop thread at
 * submit time and activated by the pool thread when the work returns.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "log.h"
#include "memory.h"
#include "thread_pool.h"

struct thread_pool_job {
    struct thread_pool_job *next;
    struct thread_pool *pool;
    thread_pool_work_fn work;
    void *work_arg;
    thread_pool_complete_fn complete;
    void *complete_arg;
    int result;
    struct event *done_event;
};

struct thread_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct thread_pool_job *head, *tail;
    bool stopping;
    int thread_count;
    pthread_t *threads;
    struct event_base *base;
    unsigned long outstanding; /* submitted, completion not yet run (loop thread only) */
};

/* thread_pool_main - a pool thread: take jobs until stopping and the queue is empty */
static void *thread_pool_main(void *arg)
{
    struct thread_pool *pool = arg;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (pool->head == NULL && !pool->stopping)
            pthread_cond_wait(&pool->wake, &pool->lock);
        struct thread_pool_job *job = pool->head;
        if (job == NULL) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pthread_mutex_unlock(&pool->lock);
        job->result = job->work(job->work_arg);
        event_active(job->done_event, EV_READ, 0);
    }
}

/* thread_pool_done - on the loop thread: run the completion and free the job */
static void thread_pool_done(evutil_socket_t fd, short what, void *arg)
{
    struct thread_pool_job *job = arg;
    job->pool->outstanding--;
    event_free(job->done_event);
    job->complete(job->complete_arg, job->result);
    free(job);
}

struct thread_pool *thread_pool_start(struct event_base *base, int threads)
{
    struct thread_pool *pool = xcalloc(1, sizeof *pool);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->base = base;
    pool->thread_count = threads;
    pool->threads = xcalloc((size_t)threads, sizeof *pool->threads);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&pool->threads[i], NULL, thread_pool_main, pool) != 0) {
            log_message(PORTER_LOG_ERR, NULL, "event=fatal error=\"cannot create thread\"");
            abort();
        }
    }
    return pool;
}

void thread_pool_submit(struct thread_pool *pool, thread_pool_work_fn work, void *work_arg,
                        thread_pool_complete_fn complete, void *complete_arg)
{
    struct thread_pool_job *job = xcalloc(1, sizeof *job);
    job->pool = pool;
    job->work = work;
    job->work_arg = work_arg;
    job->complete = complete;
    job->complete_arg = complete_arg;
    job->done_event = event_new(pool->base, -1, 0, thread_pool_done, job);
    if (job->done_event == NULL)
        abort();
    pool->outstanding++;
    pthread_mutex_lock(&pool->lock);
    if (pool->tail != NULL)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

void thread_pool_stop(struct thread_pool *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->thread_count; i++)
        pthread_join(pool->threads[i], NULL);
    /* Completions that are still due run now, so nobody waits forever for them. */
    while (pool->outstanding > 0)
        event_base_loop(pool->base, EVLOOP_ONCE);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    free(pool->threads);
    free(pool);
}
