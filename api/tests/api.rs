//! End-to-end tests over real HTTP against a server on port 0.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;

use tenantry::settings::StoreSettings;
use tenantry::{Application, Settings};

fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreSettings {
            data_dir: dir.join("data"),
            database_url: None,
            master_key_file: None,
            prices_file: None,
        },
        no_projectors: false,
    }
}

async fn spawn(settings: &Settings) -> (u16, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let app = Application::build(settings).await.expect("builds");
    let port = app.port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("serves");
    });
    (port, tx, handle)
}

#[tokio::test]
async fn serve_starts_on_embedded_sqlite_and_answers_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let (port, stop, handle) = spawn(&settings).await;
    let body: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    stop.send(()).unwrap();
    handle.await.unwrap();

    // The data directory holds the database and a master key readable by its owner only.
    let key = settings.store.data_dir.join("master.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(settings.store.data_dir.join("tenantry.db").exists());

    // A restart keeps the same key.
    let first = std::fs::read_to_string(&key).unwrap();
    let (_, stop, handle) = spawn(&settings).await;
    stop.send(()).unwrap();
    handle.await.unwrap();
    assert_eq!(std::fs::read_to_string(&key).unwrap(), first);
}

fn tenantry(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "tenantry {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_projects_live_and_the_cli_rebuilds_and_reports_status() {
    use tenantry_domain::event::{Settings as TenantSettings, TenantCreated};
    use tenantry_domain::{Event, EventId, Plan, StreamId, TenantContext, TenantId};
    use tenantry_projections::models::directory;
    use tenantry_store::{AppendRequest, ExpectedVersion, NewEvent};

    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let app = Application::build(&settings).await.unwrap();
    let (store, projections) = (app.store().clone(), app.projections().clone());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));

    let ctx = TenantContext::system(TenantId::new());
    let created = Event::TenantCreated(TenantCreated {
        slug: "acme".into(),
        name: "Acme".into(),
        plan: Plan::Starter,
        partner_id: None,
        settings: TenantSettings::default(),
        limits: Default::default(),
    });
    let out = store
        .append(
            &ctx,
            AppendRequest::to_stream(
                StreamId::tenant(),
                ExpectedVersion::NoStream,
                vec![NewEvent::new(EventId::new(), &created).unwrap()],
            ),
        )
        .await
        .unwrap();
    // The server projects in-process: the write becomes readable without any other step.
    projections
        .wait_for(directory::NAME, ctx.tenant_id, out.last_position, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(directory::tenant(&ctx, projections.db()).await.unwrap().unwrap().slug, "acme");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    drop((store, projections));

    let status = tenantry(dir.path(), &["status"]);
    assert!(
        status.lines().any(|l| l.starts_with("directory") && l.split_whitespace().nth(2) == Some("0")),
        "{status}"
    );
    let replay = tenantry(dir.path(), &["replay", "--projection", "directory"]);
    assert_eq!(replay.trim(), "rebuilt from 1 events");
    let replay = tenantry(dir.path(), &["replay", "--tenant", &ctx.tenant_id.to_string()]);
    assert_eq!(replay.trim(), "rebuilt from 1 events");
}

mod limits {
    use tenantry::service::{CommandError, Commands};
    use tenantry_domain::event::{AgentCreated, Settings as TenantSettings, TenantCreated, UserAdded};
    use tenantry_domain::tenant::TenantCommand;
    use tenantry_domain::{
        AgentId, LimitName, LimitOverrides, Plan, PlanCatalog, Rejection, Role, TenantContext, TenantId,
        UserId,
    };
    use tenantry_store::testing::Harness;

    async fn race(h: &Harness) {
        let commands = Commands::new(h.store.clone(), PlanCatalog::default());
        let platform = TenantContext::system(TenantId::new());
        let created = TenantCreated {
            slug: "racers".into(),
            name: "Racers".into(),
            plan: Plan::Starter,
            partner_id: None,
            settings: TenantSettings::default(),
            limits: LimitOverrides { max_agents: Some(5), max_users: Some(3), ..Default::default() },
        };
        commands.tenant(&platform, &TenantCommand::CreateTenant(created)).await.unwrap();
        let admin = TenantContext { role: Role::Admin, ..platform.clone() };
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (c, ctx) = (commands.clone(), admin.clone());
            tasks.push(tokio::spawn(async move {
                let agent = AgentCreated {
                    agent_id: AgentId::new(),
                    name: format!("agent-{i}"),
                    model: "m".into(),
                    system_prompt: String::new(),
                    tool_ids: vec![],
                };
                c.tenant(&ctx, &TenantCommand::CreateAgent(agent)).await
            }));
            let (c, ctx) = (commands.clone(), admin.clone());
            tasks.push(tokio::spawn(async move {
                let user = UserAdded {
                    user_id: UserId::new(),
                    email: format!("u{i}@racers.example"),
                    role: Role::User,
                };
                c.tenant(&ctx, &TenantCommand::AddUser(user)).await
            }));
        }
        let (mut ok, mut agents_refused, mut users_refused) = (0, 0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(CommandError::Rejected(Rejection::LimitReached {
                    limit: LimitName::MaxAgents,
                    max: 5,
                })) => agents_refused += 1,
                Err(CommandError::Rejected(Rejection::LimitReached {
                    limit: LimitName::MaxUsers,
                    max: 3,
                })) => users_refused += 1,
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        assert_eq!((ok, agents_refused, users_refused), (8, 45, 47));
        let state = commands.tenant_now(&admin).await.unwrap();
        assert_eq!((state.active_agents(), state.active_users()), (5, 3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_creates_against_a_limit_of_five_create_five_on_sqlite() {
        race(&Harness::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_creates_against_a_limit_of_five_create_five_on_postgres() {
        if let Some(h) = Harness::postgres().await {
            race(&h).await;
        }
    }
}
