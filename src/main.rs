//! The `nsexporter` binary: parse settings, then serve, scan once, or run a terminal
//! command. Everything else lives in the library.

use std::process::ExitCode;

use nsexporter::{cli, config, report, telemetry};

fn main() -> ExitCode {
    let (flags, matches) = cli::parse_flags();
    let settings = match config::load(&matches) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nsexporter: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_level, settings.log_format);
    if let Some(cmd) = flags.command {
        return report::run(cmd, &settings);
    }
    if flags.once {
        return match nsexporter::run_once(&settings) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("nsexporter: {e}");
                ExitCode::FAILURE
            }
        };
    }
    serve(&settings)
}

fn serve(settings: &config::Settings) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nsexporter: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let listener = match nsexporter::listen(settings.listen_address) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(address = %settings.listen_address, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            address = %local,
            telemetry_path = %settings.telemetry_path,
            procfs = %settings.paths.procfs.display(),
            interval = ?settings.scan_interval,
            "nsexporter listening"
        );
        match nsexporter::serve(settings, listener, shutdown_signal()).await {
            Ok(()) => {
                tracing::info!("shut down");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// SIGTERM or SIGINT. As PID 1 in a container nothing else would handle them.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = i.recv() => tracing::info!("SIGINT received, shutting down"),
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; falling back to Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
