# hello-gin: install and start the Windows service "hello-gin" with nssm (https://nssm.cc).
# Run as Administrator from the unpacked release (the zip of `goship package`: hello-gin.exe,
# its assets and this script):
#   powershell -ExecutionPolicy Bypass -File install-service.ps1
# Written by goship; override it with goship/templates/windows.install.ps1.j2.
$ErrorActionPreference = "Stop"
$Service = 'hello-gin'
$Base = 'C:\goship\hello-gin'
$App = Join-Path $Base "current"
New-Item -ItemType Directory -Force -Path $App, (Join-Path $Base "logs") | Out-Null
# The release: the binary and the assets it reads relative to its working directory.
Copy-Item -Recurse -Force -Path (Join-Path $PSScriptRoot "*") -Destination $App

nssm install $Service (Join-Path $App 'hello-gin.exe')
nssm set $Service AppDirectory $App
nssm set $Service DisplayName 'hello-gin'
nssm set $Service Start SERVICE_AUTO_START
# Environment: the values below, then the secrets from $Base\env (KEY=VALUE lines, never
# written into this script).
$Vars = @(
    'GIN_MODE=release'
    'PORT=8080'
)
$Secrets = Join-Path $Base "env"
if (Test-Path $Secrets) {
    $Vars += Get-Content $Secrets | Where-Object { $_ -match '^[A-Za-z_][A-Za-z0-9_]*=' }
}
nssm set $Service AppEnvironmentExtra $Vars
# Logs: stdout and stderr to files, rotated at 10485760 bytes while running.
nssm set $Service AppStdout (Join-Path $Base "logs\stdout.log")
nssm set $Service AppStderr (Join-Path $Base "logs\stderr.log")
nssm set $Service AppRotateFiles 1
nssm set $Service AppRotateOnline 1
nssm set $Service AppRotateBytes 10485760
# Restart when the process exits; give it the drain timeout to finish requests on stop.
nssm set $Service AppExit Default Restart
nssm set $Service AppRestartDelay 5000
nssm set $Service AppStopMethodConsole 10000
# Recovery actions of the service control manager, and start at boot.
sc.exe failure $Service reset= 86400 actions= restart/60000/restart/60000/restart/60000
sc.exe config $Service start= auto
nssm start $Service
