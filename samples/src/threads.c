/*
 * threads: pthread_create/join, a mutex-protected counter, a condition variable and
 * thread-local storage (clone with CLONE_THREAD and CLONE_SETTLS, futex wait/wake).
 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static int counter; static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER; static int ready;
static __thread int tls_var = 5;
static void *work(void *arg) { long id = (long)arg; tls_var = id;
  for (int i = 0; i < 10000; i++) { pthread_mutex_lock(&m); counter++; pthread_mutex_unlock(&m); }
  pthread_mutex_lock(&m); ready++; pthread_cond_signal(&cv); pthread_mutex_unlock(&m);
  return (void *)(id * 10 + tls_var); }
int main(void) { pthread_t t[4];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], 0, work, (void *)i);
  pthread_mutex_lock(&m); while (ready < 4) pthread_cond_wait(&cv, &m); pthread_mutex_unlock(&m);
  long sum = 0; for (int i = 0; i < 4; i++) { void *r; pthread_join(t[i], &r); sum += (long)r; }
  printf("counter %d sum %ld tls %d pid same %d\n", counter, sum, tls_var, getpid() > 0);
  return 0; }
