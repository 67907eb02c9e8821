//! `./demo-sandbox.sh`, the deployment demo, runs end to end: the game and the Vulkan
//! program fail in the driverless sandbox when linked directly and work through the shims,
//! with the game's picture identical to the one rendered directly outside.

use std::path::Path;
use std::process::Command;

#[test]
fn the_sandbox_demo_runs_the_game_and_vulkan_through_the_shims() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(workspace.join("demo-sandbox.sh"))
        .current_dir(&workspace)
        .output()
        .expect("run demo-sandbox.sh");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "demo-sandbox.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for line in [
        "vulkan: vkCreateInstance(&ici, NULL, &inst) failed",
        "game:   renderer llvmpipe",
        "copied=4096/4096",
        "the sandboxed capsule's picture is identical to the direct one outside",
        "dlopen       /usr/lib/x86_64-linux-gnu/dri/swrast_dri.so -> /run/host/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so",
        "environment  __EGL_VENDOR_LIBRARY_DIRS=/run/host/",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}\n{stderr}");
    }
}
