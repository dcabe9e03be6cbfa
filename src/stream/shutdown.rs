//! A stream's stop request: SIGINT (Ctrl-C) or SIGTERM ask an `every=` stream to stop after
//! the batch it is committing, never in the middle of one. The request is a `watch` channel, so
//! the wait between triggers ends the moment it comes (no polling).

use std::time::Duration;

use tokio::sync::watch;

/// Whether a stop was asked for, and a way to wait for it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    asked: watch::Receiver<bool>,
}

impl Shutdown {
    /// Asked for by SIGINT or SIGTERM (listened to from now on, in a task of the runtime).
    pub fn on_signals() -> Self {
        let (tell, asked) = watch::channel(false);
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
                // Nobody listens any more: the stream ended.
                _ = tell.closed() => return,
            }
            let _ = tell.send(true);
        });
        Self { asked }
    }

    /// Never asked for (a stream that ends by itself: `available-now`, `once`).
    pub fn never() -> Self {
        // No sender: the value stays `false`, and a wait sleeps out its interval.
        let (_, asked) = watch::channel(false);
        Self { asked }
    }

    /// A stop that `tell` asks for: for tests.
    #[cfg(test)]
    fn manual() -> (watch::Sender<bool>, Self) {
        let (tell, asked) = watch::channel(false);
        (tell, Self { asked })
    }

    /// Whether a stop has been asked for.
    pub fn asked(&self) -> bool {
        *self.asked.borrow()
    }

    /// Wait `interval`, or less if a stop is asked for meanwhile; returns whether it was.
    pub async fn sleep(&mut self, interval: Duration) -> bool {
        if self.asked() {
            return true;
        }
        let deadline = tokio::time::Instant::now() + interval;
        let asked = async { self.asked.wait_for(|asked| *asked).await.is_ok() };
        match tokio::time::timeout(interval, asked).await {
            Ok(true) => true,
            // No sender (never, or the signal task is gone): no stop can come any more; sleep
            // out what is left of the interval.
            Ok(false) => {
                tokio::time::sleep_until(deadline).await;
                false
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_ends_the_wait_at_once_and_no_stop_sleeps_it_out() {
        let (tell, mut shutdown) = Shutdown::manual();
        let start = std::time::Instant::now();
        assert!(!shutdown.sleep(Duration::from_millis(50)).await);
        assert!(start.elapsed() >= Duration::from_millis(50));
        let waiting = tokio::spawn(async move {
            let stopped = shutdown.sleep(Duration::from_secs(3600)).await;
            (stopped, shutdown)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tell.send(true).unwrap();
        let (stopped, mut shutdown) = waiting.await.unwrap();
        assert!(stopped, "the stop ended the wait");
        // An hour's wait ended by the stop, not by its interval.
        assert!(start.elapsed() < Duration::from_secs(600));
        assert!(shutdown.asked());
        assert!(shutdown.sleep(Duration::from_secs(3600)).await);
        assert!(!Shutdown::never().asked());
    }
}
