#Requires -Version 7.4
<#
    RegistryHelpers.psm1 - the registry test rig of the InitramfsPS Pester tests.

    Starts and stops, by PID, local servers bound to 127.0.0.1 only:
      - docker-registry 2.8 (the CNCF distribution server) with a config of its own: no auth,
        htpasswd (basic) auth or token auth;
      - tests/tools/token-server.py, a token service for the registry's token auth mode;
      - tests/tools/fault-proxy.py, a reverse proxy that injects faults (429/503 answers, a
        connection dropped halfway through a blob, a flipped byte, slow bodies, redirects) and
        logs every request it sees;
      - tests/tools/rogue-registry.py, a registry of its own that misbehaves as no proxy can
        (echoes the Authorization header, hangs, streams forever, odd token realms);
    and pushes test images with skopeo (OCI or Docker v2s2 media types, zstd layers, indexes).

    Each server ends by itself when the PowerShell process that started it is gone, or after a
    maximum lifetime (docker-registry runs under tests/tools/supervise.py; the Python servers
    watch that PID themselves), so a test run that dies leaves nothing behind. Stop them in
    AfterAll anyway.

    Needs: docker-registry, skopeo, htpasswd (apache2-utils), openssl, python3 (standard library).
    Self-contained: it does not need TestHelpers.psm1 (import that one for image building).
#>

Set-StrictMode -Version 3.0

$script:ToolsDir = [System.IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../tools'))
$script:Utf8 = [System.Text.UTF8Encoding]::new($false)

#region internals

function Get-RigFreePort {
    $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    try { $l.Start(); ([System.Net.IPEndPoint]$l.LocalEndpoint).Port }
    finally { $l.Stop() }
}

function New-RigDirectory {
    # Under Pester's $TestDrive while a test file runs (Pester removes it), else under the temp dir.
    param([string] $Prefix)
    $parent = $null
    $td = Get-Variable -Name TestDrive -Scope Global -ValueOnly -ErrorAction SilentlyContinue
    if ($td -and [System.IO.Directory]::Exists("$td")) { $parent = "$td" }
    if (-not $parent) { $parent = [System.IO.Path]::GetTempPath() }
    $dir = Join-Path $parent ("$Prefix-" + [guid]::NewGuid().ToString('N').Substring(0, 10))
    [void][System.IO.Directory]::CreateDirectory($dir)
    $dir
}

function Resolve-RigPath {
    param([string] $Path)
    $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
}

function Start-RigProcess {
    # Starts $Command in the background with stdin from /dev/null and stdout+stderr appended to
    # $LogPath (the shell execs the command: the returned Process is the command itself).
    param([string] $LogPath, [string[]] $Command)
    $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
    foreach ($a in @('-c', 'log=$1; shift; exec "$@" </dev/null >>"$log" 2>&1', 'sh', $LogPath) + $Command) { $psi.ArgumentList.Add($a) }
    $psi.UseShellExecute = $false
    [System.Diagnostics.Process]::Start($psi)
}

function Get-RigLogTail {
    param([string] $LogPath, [int] $Lines = 30)
    if (Test-Path -LiteralPath $LogPath) { (Get-Content -LiteralPath $LogPath -Tail $Lines) -join "`n" } else { '(no log)' }
}

function Test-RigPidAlive {
    param([int] $ProcessId)
    if ($ProcessId -le 0) { return $false }
    # a zombie still has /proc/<pid>; its state is Z
    $stat = "/proc/$ProcessId/stat"
    if (-not (Test-Path -LiteralPath $stat)) { return $false }
    try { $s = [System.IO.File]::ReadAllText($stat) } catch { return $false }
    $state = $s.Substring($s.LastIndexOf(')') + 2, 1)
    $state -ne 'Z' -and $state -ne 'X'
}

function Send-RigSignal {
    # the shell's builtin kill: no procps needed
    param([int] $ProcessId, [string] $Signal)
    & /bin/sh -c 'kill -s "$1" "$2" 2>/dev/null; exit 0' sh $Signal "$ProcessId"
}

function Test-RigCommandLine {
    # Whether /proc/<pid>/cmdline mentions $Pattern (guards against signalling a reused PID).
    param([int] $ProcessId, [string] $Pattern)
    try { $cmd = [System.IO.File]::ReadAllText("/proc/$ProcessId/cmdline").Replace([char]0, ' ') } catch { return $false }
    $cmd.Contains($Pattern)
}

function Stop-RigProcess {
    # SIGTERM, wait up to $GraceSeconds, then SIGKILL; for each PID (the server, then its wrapper)
    # whose command line mentions $Expect.
    param([int[]] $ProcessId, [System.Diagnostics.Process] $Process, [string] $Expect, [double] $GraceSeconds = 5)
    foreach ($p in $ProcessId) {
        if ($p -le 0 -or -not (Test-RigPidAlive $p)) { continue }
        if ($Expect -and -not (Test-RigCommandLine $p $Expect)) { continue }
        Send-RigSignal $p TERM
        $deadline = [DateTime]::UtcNow.AddSeconds($GraceSeconds)
        while ((Test-RigPidAlive $p) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
        if (Test-RigPidAlive $p) { Send-RigSignal $p KILL }
    }
    if ($Process) {
        try {
            if (-not $Process.WaitForExit(5000)) { $Process.Kill(); [void]$Process.WaitForExit(5000) }
        }
        catch { }
        $Process.Dispose()
    }
}

function Stop-RigServer {
    # Stops a server object once (a second call does nothing) and marks it Stopped.
    param($Server, [string] $Expect)
    if ($null -eq $Server) { return }
    if ($Server.PSObject.Properties['Stopped'] -and $Server.Stopped) { return }
    $ids = @($Server.Pid)
    if ($Server.PSObject.Properties['WrapperPid']) { $ids += $Server.WrapperPid }
    Stop-RigProcess -ProcessId $ids -Process $Server.Process -Expect $Expect
    $Server | Add-Member -NotePropertyName Stopped -NotePropertyValue $true -Force
}

function Wait-RigReadyFile {
    # Waits for <dir>/ready.json written by the Python servers; returns it parsed.
    param([string] $Directory, [System.Diagnostics.Process] $Process, [string] $LogPath, [string] $What, [double] $TimeoutSeconds = 15)
    $ready = Join-Path $Directory 'ready.json'
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while (-not (Test-Path -LiteralPath $ready)) {
        if ($Process.HasExited) { throw "$What exited with code $($Process.ExitCode) before it was ready: $(Get-RigLogTail $LogPath)" }
        if ([DateTime]::UtcNow -gt $deadline) {
            Stop-RigProcess -ProcessId $Process.Id -Process $Process -Expect $What
            throw "$What was not ready within $TimeoutSeconds s: $(Get-RigLogTail $LogPath)"
        }
        Start-Sleep -Milliseconds 50
    }
    Get-Content -LiteralPath $ready -Raw | ConvertFrom-Json
}

function Wait-RigIdle {
    # A Python server logs a request when it has finished answering it, which can be a moment
    # after the client has read the answer: wait (up to $WaitSeconds) until it has none in flight.
    param([string] $StatusUrl, [string] $What, [double] $WaitSeconds)
    $deadline = [DateTime]::UtcNow.AddSeconds($WaitSeconds)
    while ($true) {
        $status = Invoke-RestMethod -Uri $StatusUrl -TimeoutSec 5
        if ([int]$status.inflight -eq 0) { return }
        if ([DateTime]::UtcNow -gt $deadline) { Write-Warning "$What still has $($status.inflight) request(s) in flight."; return }
        Start-Sleep -Milliseconds 20
    }
}

function Get-PythonPath {
    foreach ($c in '/usr/bin/python3', 'python3') {
        $cmd = Get-Command $c -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        if ($cmd) { return $cmd.Source }
    }
    throw 'python3 is not installed (the token server and the fault proxy need it).'
}

function ConvertTo-YamlString {
    # A single-quoted YAML scalar.
    param([string] $Value)
    "'" + $Value.Replace("'", "''") + "'"
}

function Get-PropertyValue {
    param($Object, [string[]] $Names)
    foreach ($n in $Names) {
        if ($Object -is [System.Collections.IDictionary]) {
            foreach ($k in $Object.Keys) { if ([string]::Equals([string]$k, $n, 'OrdinalIgnoreCase')) { return $Object[$k] } }
        }
        elseif ($Object.PSObject.Properties[$n]) { return $Object.$n }
    }
    $null
}

function Invoke-RigTool {
    # Runs a native tool; throws with its stderr on a non-zero exit; returns stdout.
    param([string] $FilePath, [string[]] $ArgumentList)
    $psi = [System.Diagnostics.ProcessStartInfo]::new($FilePath)
    foreach ($a in $ArgumentList) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.RedirectStandardInput = $true
    $psi.UseShellExecute = $false
    $p = [System.Diagnostics.Process]::Start($psi)
    $p.StandardInput.Close()
    $o = $p.StandardOutput.ReadToEndAsync(); $e = $p.StandardError.ReadToEndAsync()
    $p.WaitForExit()
    $out = $o.GetAwaiter().GetResult(); $err = $e.GetAwaiter().GetResult()
    if ($p.ExitCode -ne 0) {
        # never echo credentials given on the command line
        $shown = @(for ($i = 0; $i -lt $ArgumentList.Count; $i++) {
                if ($i -gt 0 -and $ArgumentList[$i - 1] -match '^--(src-|dest-)?creds$') { '***' } else { $ArgumentList[$i] }
            }) -join ' '
        throw "'$FilePath $shown' failed with exit code $($p.ExitCode): $err"
    }
    $out
}

#endregion

#region docker-registry

function Start-TestRegistry {
    <#
    .SYNOPSIS
    Starts docker-registry on 127.0.0.1:<free port> with a config of its own and waits until GET /v2/ answers.
    .DESCRIPTION
    Writes <dir>/config.yml: filesystem storage in <dir>/data, deletes enabled, http.addr
    127.0.0.1:<port>, and the auth section:
      -Auth none      no auth section;
      -Auth htpasswd  auth.htpasswd with -HtpasswdFile (New-Htpasswd writes one);
      -Auth token     auth.token with -Token: a hashtable @{ Realm; Service; Issuer; RootCertBundle }
                      or the object Start-TestTokenServer returns (Url is the realm, CertPath the bundle).
    Runs `docker-registry serve <config>` under tests/tools/supervise.py (which ends it when this
    PowerShell process is gone or after -MaxLifetimeSeconds; stdout and stderr go to
    <dir>/registry.log) and waits up to -TimeoutSeconds for `GET /v2/` to answer 200 or 401. A
    port taken in the meantime is retried with another port (3 attempts).
    .OUTPUTS
    PSCustomObject: Url ('127.0.0.1:<port>'), Port, Pid (docker-registry), WrapperPid (supervise.py),
    Process (the supervisor), Directory, DataDir, ConfigPath, LogPath, Auth.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [ValidateSet('none', 'htpasswd', 'token')][string] $Auth = 'none',
        [string] $HtpasswdFile,
        $Token,
        [string] $Directory,
        [double] $TimeoutSeconds = 30,
        [int] $MaxLifetimeSeconds = 1800
    )
    if (-not (Get-Command docker-registry -CommandType Application -ErrorAction SilentlyContinue)) {
        throw 'docker-registry is not installed (Debian package docker-registry).'
    }
    $dir = if ($Directory) { Resolve-RigPath $Directory } else { New-RigDirectory 'registry' }
    [void][System.IO.Directory]::CreateDirectory($dir)
    $data = Join-Path $dir 'data'
    [void][System.IO.Directory]::CreateDirectory($data)
    $authYaml = switch ($Auth) {
        'none' { '' }
        'htpasswd' {
            if (-not $HtpasswdFile) { throw '-Auth htpasswd needs -HtpasswdFile (see New-Htpasswd).' }
            $hp = Resolve-RigPath $HtpasswdFile
            if (-not (Test-Path -LiteralPath $hp)) { throw "No htpasswd file '$hp'." }
            "auth:`n  htpasswd:`n    realm: initramfsps-test`n    path: $(ConvertTo-YamlString $hp)`n"
        }
        'token' {
            if (-not $Token) { throw '-Auth token needs -Token @{ Realm; Service; Issuer; RootCertBundle } or a Start-TestTokenServer result.' }
            $realm = Get-PropertyValue $Token 'Realm', 'Url'
            $service = Get-PropertyValue $Token 'Service'
            $issuer = Get-PropertyValue $Token 'Issuer'
            $bundle = Get-PropertyValue $Token 'RootCertBundle', 'CertPath'
            foreach ($pair in @(@('Realm', $realm), @('Service', $service), @('Issuer', $issuer), @('RootCertBundle', $bundle))) {
                if (-not $pair[1]) { throw "-Token has no $($pair[0])." }
            }
            "auth:`n  token:`n    realm: $(ConvertTo-YamlString $realm)`n    service: $(ConvertTo-YamlString $service)`n" +
            "    issuer: $(ConvertTo-YamlString $issuer)`n    rootcertbundle: $(ConvertTo-YamlString (Resolve-RigPath $bundle))`n"
        }
    }
    $config = Join-Path $dir 'config.yml'
    $log = Join-Path $dir 'registry.log'
    $lastError = $null
    for ($attempt = 1; $attempt -le 3; $attempt++) {
        $port = Get-RigFreePort
        $yaml = @"
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $(ConvertTo-YamlString $data)
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: initramfsps-test-$([guid]::NewGuid().ToString('N'))
health:
  storagedriver:
    enabled: false
$authYaml
"@
        [System.IO.File]::WriteAllText($config, $yaml, $script:Utf8)
        # docker-registry reads every REGISTRY_* variable as configuration: a credentials test's
        # REGISTRY_AUTH_FILE (even set to '' by a restore of an unset one: .NET keeps an empty
        # variable on Linux) became 'auth: file', which it cannot load. It starts without them.
        $registryEnv = @(Get-ChildItem Env: | Where-Object Name -Like 'REGISTRY_*')
        foreach ($v in $registryEnv) { Remove-Item -LiteralPath "Env:$($v.Name)" }
        try {
            $proc = Start-RigProcess -LogPath $log -Command @((Get-PythonPath), (Join-Path $script:ToolsDir 'supervise.py'),
                '--parent-pid', "$PID", '--max-lifetime', "$MaxLifetimeSeconds", '--', 'docker-registry', 'serve', $config)
        }
        finally {
            foreach ($v in $registryEnv) { [Environment]::SetEnvironmentVariable($v.Name, $v.Value) }
        }
        $client = [System.Net.Http.HttpClient]::new()
        $client.Timeout = [TimeSpan]::FromSeconds(2)
        $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
        $up = $false
        try {
            while ([DateTime]::UtcNow -lt $deadline -and -not $proc.HasExited) {
                try {
                    $r = $client.GetAsync("http://127.0.0.1:$port/v2/").GetAwaiter().GetResult()
                    $code = [int]$r.StatusCode
                    $r.Dispose()
                    if ($code -eq 200 -or $code -eq 401) { $up = $true; break }
                }
                catch { }
                Start-Sleep -Milliseconds 100
            }
        }
        finally { $client.Dispose() }
        $regPid = 0
        if (-not $proc.HasExited) {
            $children = "/proc/$($proc.Id)/task/$($proc.Id)/children"
            if (Test-Path -LiteralPath $children) {
                $first = ([System.IO.File]::ReadAllText($children).Trim() -split '\s+')[0]
                if ($first) { $regPid = [int]$first }
            }
        }
        if ($up) {
            return [pscustomobject]@{
                PSTypeName = 'InitramfsPS.Test.Registry'
                Url        = "127.0.0.1:$port"
                Port       = $port
                Pid        = $regPid
                WrapperPid = $proc.Id
                Process    = $proc
                Directory  = $dir
                DataDir    = $data
                ConfigPath = $config
                LogPath    = $log
                Auth       = $Auth
            }
        }
        $tail = Get-RigLogTail $log
        Stop-RigProcess -ProcessId $regPid, $proc.Id -Process $proc -Expect $config
        $lastError = "docker-registry did not answer GET /v2/ on 127.0.0.1:$port within $TimeoutSeconds s: $tail"
        if ($tail -notmatch 'address already in use') { break }
    }
    throw $lastError
}

function Stop-TestRegistry {
    <#
    .SYNOPSIS
    Stops a registry started by Start-TestRegistry (SIGTERM, then SIGKILL after 5 s) by its PID and its wrapper's.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)][AllowNull()] $Registry)
    process {
        if ($null -eq $Registry) { return }
        Stop-RigServer $Registry -Expect $Registry.ConfigPath
    }
}

function New-Htpasswd {
    <#
    .SYNOPSIS
    Writes (or appends to, with -Path of an existing file) an htpasswd file with a bcrypt entry (`htpasswd -Bbn`); returns the file's path.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    [OutputType([string])]
    param(
        [Parameter(Mandatory)][string] $User,
        [Parameter(Mandatory)][string] $Password,
        [string] $Path
    )
    if (-not $Path) { $Path = Join-Path (New-RigDirectory 'htpasswd') 'htpasswd' }
    $full = Resolve-RigPath $Path
    $line = (Invoke-RigTool 'htpasswd' @('-Bbn', $User, $Password)).Trim()
    if (-not $line.StartsWith("${User}:`$2")) { throw "htpasswd gave no bcrypt entry for '$User'." }
    [System.IO.File]::AppendAllText($full, "$line`n", $script:Utf8)
    $full
}

#endregion

#region token server

function Start-TestTokenServer {
    <#
    .SYNOPSIS
    Starts tests/tools/token-server.py on 127.0.0.1: a registry token service signing RS256 JWTs with a self-signed certificate (x5c).
    .DESCRIPTION
    Anonymous callers get pull only of the scopes they ask for; callers with valid basic
    credentials (one of -Users) get every action asked for; wrong credentials get 401. Tokens last
    -ExpiresSeconds. Counts requests per scope: Get-TokenServerStats.
    .OUTPUTS
    PSCustomObject: Url (the realm, http://127.0.0.1:<port>/token), Port, Pid, Process, Service,
    Issuer, CertPath (for the registry's rootcertbundle), KeyPath, StatsUrl, Directory, LogPath
    (requests.jsonl), ServerLogPath (stdout/stderr).
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [Parameter(Mandatory)][string] $Service,
        [Parameter(Mandatory)][string] $Issuer,
        [hashtable] $Users = @{},
        [int] $ExpiresSeconds = 300,
        [string] $Directory,
        [int] $MaxLifetimeSeconds = 1800
    )
    $dir = if ($Directory) { Resolve-RigPath $Directory } else { New-RigDirectory 'token-server' }
    [void][System.IO.Directory]::CreateDirectory($dir)
    $usersFile = Join-Path $dir 'users.json'
    $u = [ordered]@{}; foreach ($k in $Users.Keys) { $u[[string]$k] = [string]$Users[$k] }
    [System.IO.File]::WriteAllText($usersFile, (ConvertTo-Json -InputObject $u -Compress), $script:Utf8)
    $log = Join-Path $dir 'server.log'
    $proc = Start-RigProcess -LogPath $log -Command @((Get-PythonPath), (Join-Path $script:ToolsDir 'token-server.py'),
        '--dir', $dir, '--service', $Service, '--issuer', $Issuer, '--users-file', $usersFile,
        '--expires', "$ExpiresSeconds", '--parent-pid', "$PID", '--max-lifetime', "$MaxLifetimeSeconds")
    $ready = Wait-RigReadyFile -Directory $dir -Process $proc -LogPath $log -What 'token-server.py'
    [pscustomobject]@{
        PSTypeName    = 'InitramfsPS.Test.TokenServer'
        Url           = [string]$ready.realm
        Port          = [int]$ready.port
        Pid           = [int]$ready.pid
        Process       = $proc
        Service       = $Service
        Issuer        = $Issuer
        CertPath      = [string]$ready.cert
        KeyPath       = [string]$ready.key
        StatsUrl      = "http://127.0.0.1:$($ready.port)/stats"
        Directory     = $dir
        LogPath       = Join-Path $dir 'requests.jsonl'
        ServerLogPath = $log
    }
}

function Stop-TestTokenServer {
    <#
    .SYNOPSIS
    Stops a token server started by Start-TestTokenServer, by PID.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)][AllowNull()] $Server)
    process {
        Stop-RigServer $Server -Expect 'token-server.py'
    }
}

function Get-TokenServerStats {
    <#
    .SYNOPSIS
    The token server's counters: Requests, ByScope (hashtable scope -> count; '' for a request without scope), ByUser, Statuses, Events, Tokens (every JWT issued).
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)] $Server)
    process {
        $s = (Invoke-WebRequest -Uri $Server.StatsUrl -TimeoutSec 10).Content | ConvertFrom-Json -AsHashtable
        [pscustomobject]@{
            Requests = [int]$s.requests
            ByScope  = $s.by_scope
            ByUser   = $s.by_user
            Statuses = $s.statuses
            Events   = @($s.events | ForEach-Object { [pscustomobject]$_ })
            Tokens   = [string[]]@($s.tokens)
        }
    }
}

function Reset-TokenServerStats {
    <#
    .SYNOPSIS
    Clears the token server's counters (the signing key stays).
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)] $Server)
    process { $null = Invoke-RestMethod -Method Post -Uri "http://127.0.0.1:$($Server.Port)/stats/reset" -TimeoutSec 10 }
}

#endregion

#region fault proxy

function Start-FaultProxy {
    <#
    .SYNOPSIS
    Starts tests/tools/fault-proxy.py on 127.0.0.1: a reverse proxy in front of -Upstream that injects -Fault into requests whose path matches -Match (default: blob URLs).
    .DESCRIPTION
    -Fault, comma-separated: none | <code>-once|twice|always|<n> (e.g. 429-once, 503-twice,
    503-always, 403-always; 429/503 carry Retry-After: -RetryAfter) | drop-half | drop-always |
    reset-half | flip-byte | slow (bodies at -SlowRate bytes/s) | redirect (307 to -RedirectTo,
    where {path} is the request's path; by default /__redirect{path} on the proxy itself, which
    forwards it upstream). -PerPath counts <code>-<n> per path.
    See the header of tests/tools/fault-proxy.py for the details. Get-FaultProxyLog reads what it saw.
    .OUTPUTS
    PSCustomObject: Url ('127.0.0.1:<port>'), Port, Pid, Process, Upstream, Fault, Directory,
    LogPath (requests.jsonl), ServerLogPath.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [Parameter(Mandatory)][string] $Upstream,
        [string] $Fault = 'none',
        [string] $Match,
        [switch] $PerPath,
        [int] $RetryAfter = 1,
        [int] $SlowRate = 1MB,
        [string] $RedirectTo,
        [string] $Directory,
        [int] $MaxLifetimeSeconds = 1800
    )
    $up = $Upstream -replace '^https?://', '' -replace '/.*$', ''
    if ($up -notmatch '^[^:]+:\d+$') { throw "-Upstream must be host:port (e.g. 127.0.0.1:5000), got '$Upstream'." }
    $dir = if ($Directory) { Resolve-RigPath $Directory } else { New-RigDirectory 'fault-proxy' }
    [void][System.IO.Directory]::CreateDirectory($dir)
    $log = Join-Path $dir 'server.log'
    $cmd = @((Get-PythonPath), (Join-Path $script:ToolsDir 'fault-proxy.py'), '--upstream', $up, '--dir', $dir,
        '--fault', $Fault, '--retry-after', "$RetryAfter", '--slow-rate', "$SlowRate",
        '--parent-pid', "$PID", '--max-lifetime', "$MaxLifetimeSeconds")
    if ($Match) { $cmd += @('--match', $Match) }
    if ($PerPath) { $cmd += '--per-path' }
    if ($RedirectTo) { $cmd += @('--redirect-to', $RedirectTo) }
    $proc = Start-RigProcess -LogPath $log -Command $cmd
    $ready = Wait-RigReadyFile -Directory $dir -Process $proc -LogPath $log -What 'fault-proxy.py'
    [pscustomobject]@{
        PSTypeName    = 'InitramfsPS.Test.FaultProxy'
        Url           = "127.0.0.1:$($ready.port)"
        Port          = [int]$ready.port
        Pid           = [int]$ready.pid
        Process       = $proc
        Upstream      = $up
        Fault         = $Fault
        Directory     = $dir
        LogPath       = Join-Path $dir 'requests.jsonl'
        ServerLogPath = $log
    }
}

function Stop-FaultProxy {
    <#
    .SYNOPSIS
    Stops a proxy started by Start-FaultProxy, by PID.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)][AllowNull()] $Proxy)
    process {
        Stop-RigServer $Proxy -Expect 'fault-proxy.py'
    }
}

function Get-FaultProxyLog {
    <#
    .SYNOPSIS
    The requests the proxy has finished, oldest first: Id, T0, T1 (epoch seconds), Method, Path, Query, Range, Auth (scheme only), Status, UpstreamStatus, Fault, Bytes, Length, Complete, plus Digest (sha256:<hex> of a blob URL, else $null) and Kind (Blob, Manifest, Ping, Other).
    .DESCRIPTION
    Reads <dir>/requests.jsonl. A request is logged when the proxy has finished answering it, which
    can be a moment after the client has read the whole answer: so it first waits (up to
    -WaitSeconds) until the proxy has no request in flight; -NoWait reads at once.
    -Blob keeps blob URLs only.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)] $Proxy, [switch] $Blob, [switch] $NoWait, [double] $WaitSeconds = 10)
    process {
        if (-not $NoWait) {
            Wait-RigIdle -StatusUrl "http://127.0.0.1:$($Proxy.Port)/__proxy/status" -What 'The fault proxy' -WaitSeconds $WaitSeconds
        }
        if (-not (Test-Path -LiteralPath $Proxy.LogPath)) { return }
        $lines = @(Get-Content -LiteralPath $Proxy.LogPath | Where-Object { $_ })
        foreach ($line in $lines) {
            $r = $line | ConvertFrom-Json
            $digest = if ($r.path -match '/blobs/(sha256:[0-9a-f]{64})$') { $Matches[1] } else { $null }
            $kind = if ($digest) { 'Blob' } elseif ($r.path -match '/manifests/') { 'Manifest' } elseif ($r.path -eq '/v2/' -or $r.path -eq '/v2') { 'Ping' } else { 'Other' }
            if ($Blob -and $kind -ne 'Blob') { continue }
            [pscustomobject]@{
                Id = [int]$r.id; T0 = [double]$r.t0; T1 = [double]$r.t1; Method = $r.method; Path = $r.path; Query = $r.query
                Range = $r.range; Auth = $r.auth; Status = [int]$r.status; UpstreamStatus = $r.upstream_status; Fault = $r.fault
                Bytes = [long]$r.bytes; Length = $r.length; Complete = [bool]$r.complete; Digest = $digest; Kind = $kind
            }
        }
    }
}

function Reset-FaultProxy {
    <#
    .SYNOPSIS
    Clears the proxy's log and its fault counters (a "once" fault fires again).
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)] $Proxy)
    process { $null = Invoke-RestMethod -Method Post -Uri "http://127.0.0.1:$($Proxy.Port)/__proxy/reset" -TimeoutSec 10 }
}

#endregion

#region rogue registry

function Start-RogueRegistry {
    <#
    .SYNOPSIS
    Starts tests/tools/rogue-registry.py on 127.0.0.1: a registry of its own whose repository name picks how it misbehaves.
    .DESCRIPTION
    It serves one small image under any repository; the last component of the repository names
    the misbehaviour (`<Url>/rogue/echo-body:1.0`): ok, echo-body, echo-reason, echo-challenge,
    echo-denied, echo-token, echo-token-error, hang, token-hang, endless-manifest, endless-token,
    endless-error, huge-length, big-config, newline-digest, realm-file, realm-ftp, realm-tls.
    See the header of tests/tools/rogue-registry.py. -User/-Password are the Basic credentials
    it accepts, -Token the Bearer token its /token issues for them. Endless bodies stop after
    -EndlessCap bytes.
    .OUTPUTS
    PSCustomObject: Url ('127.0.0.1:<port>'), Port, TlsPort (the same server behind TLS with a
    self-signed certificate), StalledPort (a listener whose connects never complete), Pid,
    Process, Directory, LogPath (requests.jsonl), ServerLogPath.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [string] $User = 'rogue-user',
        [string] $Password = 'rogue-password',
        [string] $Token = 'rogue-token',
        [long] $EndlessCap = 256MB,
        [string] $Directory,
        [int] $MaxLifetimeSeconds = 1800
    )
    $dir = if ($Directory) { Resolve-RigPath $Directory } else { New-RigDirectory 'rogue-registry' }
    [void][System.IO.Directory]::CreateDirectory($dir)
    $log = Join-Path $dir 'server.log'
    $proc = Start-RigProcess -LogPath $log -Command @((Get-PythonPath), (Join-Path $script:ToolsDir 'rogue-registry.py'),
        '--dir', $dir, '--user', $User, '--password', $Password, '--token', $Token, '--endless-cap', "$EndlessCap",
        '--parent-pid', "$PID", '--max-lifetime', "$MaxLifetimeSeconds")
    $ready = Wait-RigReadyFile -Directory $dir -Process $proc -LogPath $log -What 'rogue-registry.py' -TimeoutSeconds 30
    [pscustomobject]@{
        PSTypeName    = 'InitramfsPS.Test.RogueRegistry'
        Url           = "127.0.0.1:$($ready.port)"
        Port          = [int]$ready.port
        TlsPort       = [int]$ready.tls_port
        StalledPort   = [int]$ready.stalled_port
        Pid           = [int]$ready.pid
        Process       = $proc
        Directory     = $dir
        LogPath       = Join-Path $dir 'requests.jsonl'
        ServerLogPath = $log
    }
}

function Stop-RogueRegistry {
    <#
    .SYNOPSIS
    Stops a server started by Start-RogueRegistry, by PID.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)][AllowNull()] $Server)
    process {
        Stop-RigServer $Server -Expect 'rogue-registry.py'
    }
}

function Get-RogueRegistryLog {
    <#
    .SYNOPSIS
    The requests the rogue registry has finished, oldest first: Id, T0, T1, Method, Path, Behaviour, Auth (scheme only), Status, Bytes, Complete.
    .DESCRIPTION
    Waits (up to -WaitSeconds) until it has no request in flight, as Get-FaultProxyLog does.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)] $Server, [double] $WaitSeconds = 10)
    process {
        Wait-RigIdle -StatusUrl "http://127.0.0.1:$($Server.Port)/__rogue/status" -What 'The rogue registry' -WaitSeconds $WaitSeconds
        foreach ($line in @(Get-Content -LiteralPath $Server.LogPath | Where-Object { $_ })) {
            $r = $line | ConvertFrom-Json
            [pscustomobject]@{
                Id = [int]$r.id; T0 = [double]$r.t0; T1 = [double]$r.t1; Method = $r.method; Path = $r.path; Behaviour = $r.behaviour
                Auth = $r.auth; Status = [int]$r.status; Bytes = [long]$r.bytes; Complete = [bool]$r.complete
            }
        }
    }
}

#endregion

#region referrers registry

function Start-ReferrersRegistry {
    <#
    .SYNOPSIS
    Starts tests/tools/referrers-registry.py on 127.0.0.1: a small in-memory OCI registry with the referrers API (which docker-registry 2.8 lacks).
    .DESCRIPTION
    It answers blobs (HEAD, GET, uploads by POST/PATCH/PUT, cross-repository mounts), manifests by
    tag and digest (PUT answers `OCI-Subject` for a manifest with a subject), `GET
    /v2/<name>/referrers/<digest>[?artifactType=]` and tag lists. Blobs and request bodies larger
    than -MaxBlob are refused (413). -Hostile endless-manifest | endless-upload-error |
    foreign-location makes it misbehave (endless bodies stop after -EndlessCap bytes). See the
    header of the script. Get-ReferrersRegistryLog reads what it saw.
    .OUTPUTS
    PSCustomObject: Url ('127.0.0.1:<port>'), Port, Pid, Process, Directory, LogPath
    (requests.jsonl), ServerLogPath.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [long] $MaxBlob = 1GB,
        [ValidateSet('none', 'endless-manifest', 'endless-upload-error', 'foreign-location')][string] $Hostile = 'none',
        [long] $EndlessCap = 256MB,
        [string] $Directory,
        [int] $MaxLifetimeSeconds = 1800
    )
    $dir = if ($Directory) { Resolve-RigPath $Directory } else { New-RigDirectory 'referrers-registry' }
    [void][System.IO.Directory]::CreateDirectory($dir)
    $log = Join-Path $dir 'server.log'
    $proc = Start-RigProcess -LogPath $log -Command @((Get-PythonPath), (Join-Path $script:ToolsDir 'referrers-registry.py'),
        '--dir', $dir, '--max-blob', "$MaxBlob", '--hostile', $Hostile, '--endless-cap', "$EndlessCap",
        '--parent-pid', "$PID", '--max-lifetime', "$MaxLifetimeSeconds")
    $ready = Wait-RigReadyFile -Directory $dir -Process $proc -LogPath $log -What 'referrers-registry.py'
    [pscustomobject]@{
        PSTypeName    = 'InitramfsPS.Test.ReferrersRegistry'
        Url           = "127.0.0.1:$($ready.port)"
        Port          = [int]$ready.port
        Pid           = [int]$ready.pid
        Process       = $proc
        Directory     = $dir
        LogPath       = Join-Path $dir 'requests.jsonl'
        ServerLogPath = $log
    }
}

function Stop-ReferrersRegistry {
    <#
    .SYNOPSIS
    Stops a server started by Start-ReferrersRegistry, by PID.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)][AllowNull()] $Server)
    process {
        Stop-RigServer $Server -Expect 'referrers-registry.py'
    }
}

function Get-ReferrersRegistryLog {
    <#
    .SYNOPSIS
    The requests the referrers registry has finished, oldest first: Id, T0, T1, Method, Path, Query, Status, BytesIn, BytesOut, Auth (scheme only).
    .DESCRIPTION
    Waits (up to -WaitSeconds) until it has no request in flight, as Get-FaultProxyLog does.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)] $Server, [double] $WaitSeconds = 10)
    process {
        Wait-RigIdle -StatusUrl "http://127.0.0.1:$($Server.Port)/__registry/status" -What 'The referrers registry' -WaitSeconds $WaitSeconds
        foreach ($line in @(Get-Content -LiteralPath $Server.LogPath | Where-Object { $_ })) {
            $r = $line | ConvertFrom-Json
            [pscustomobject]@{
                Id = [int]$r.id; T0 = [double]$r.t0; T1 = [double]$r.t1; Method = $r.method; Path = $r.path; Query = $r.query
                Status = [int]$r.status; BytesIn = [long]$r.bytes_in; BytesOut = [long]$r.bytes_out; Auth = $r.auth
            }
        }
    }
}

function Get-TestRegistryRequest {
    <#
    .SYNOPSIS
    The requests docker-registry logged (Start-TestRegistry captures its log): Method, Path, Status, Bytes (of the answer).
    .DESCRIPTION
    docker-registry writes one access-log line per request to its log, in the combined log format:
    `127.0.0.1 - - [date] "PUT /v2/app/blobs/uploads/<uuid>?... HTTP/1.1" 201 0 "" "InitramfsPS/0.1"`.
    -Since skips the first lines (a count from an earlier call: `.Count`).
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)] $Registry, [int] $Since = 0)
    process {
        $lines = @(Get-Content -LiteralPath $Registry.LogPath | Where-Object { $_ -match '"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-)' })
        foreach ($line in ($lines | Select-Object -Skip $Since)) {
            $null = $line -match '"(GET|HEAD|POST|PUT|PATCH|DELETE) ([^?\s]+)\??(\S*) HTTP/[\d.]+" (\d{3}) (\d+|-)'
            [pscustomobject]@{ Method = $Matches[1]; Path = $Matches[2]; Query = $Matches[3]; Status = [int]$Matches[4] }
        }
    }
}

#endregion

#region pushing and reading images

function Push-TestImage {
    <#
    .SYNOPSIS
    Pushes an image from an OCI layout to a registry with skopeo; returns the pushed reference and the manifest digest the registry holds.
    .DESCRIPTION
    `skopeo copy --dest-tls-verify=false [--format v2s2] [--all] [--preserve-digests] [--dest-creds u:p]
    --digestfile <f> oci:<Layout>:<Tag> docker://<Registry>/<Repository>:<DestinationTag>`, then the
    same for each -AdditionalTag.
    -Zstd first recompresses the image into a new layout (`skopeo copy --dest-compress
    --dest-compress-format zstd oci:<Layout>:<Tag> oci:<new>:<Tag>`; copying within one layout would
    reuse the gzip blobs) and pushes that one. -DockerV2S2 converts to Docker media types. -All
    pushes a whole index (the tag must name an index in the layout).
    -Credential 'user:password' for a registry with auth.
    .OUTPUTS
    PSCustomObject: Registry, Repository, Tag, Reference ('<registry>/<repo>:<tag>'), Digest
    (manifest or index digest in the registry), DigestReference ('<registry>/<repo>@<digest>'),
    AdditionalReferences, SourceLayout (the layout pushed: the zstd copy with -Zstd).
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [Parameter(Mandatory)][string] $Layout,
        [Parameter(Mandatory)][string] $Tag,
        [Parameter(Mandatory)][string] $Registry,
        [Parameter(Mandatory)][string] $Repository,
        [string] $DestinationTag,
        [Alias('Tag2')][string[]] $AdditionalTag = @(),
        [switch] $DockerV2S2,
        [switch] $Zstd,
        [switch] $All,
        [switch] $PreserveDigests,
        [string] $Credential
    )
    $layoutPath = Resolve-RigPath $Layout
    if (-not (Test-Path -LiteralPath (Join-Path $layoutPath 'index.json'))) { throw "No OCI layout at '$layoutPath'." }
    $reg = $Registry -replace '^https?://', '' -replace '/+$', ''
    if (-not $DestinationTag) { $DestinationTag = $Tag }
    $source = $layoutPath
    if ($Zstd) {
        $source = "$layoutPath-zstd-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $zargs = @('copy', '--dest-compress', '--dest-compress-format', 'zstd')
        if ($All) { $zargs += '--all' }
        $null = Invoke-RigTool 'skopeo' ($zargs + @("oci:${layoutPath}:$Tag", "oci:${source}:$Tag"))
    }
    $digestFile = [System.IO.Path]::GetTempFileName()
    $refs = [System.Collections.Generic.List[string]]::new()
    try {
        $digest = $null
        foreach ($dt in @($DestinationTag) + $AdditionalTag) {
            $a = @('copy', '--dest-tls-verify=false', '--digestfile', $digestFile)
            if ($DockerV2S2) { $a += @('--format', 'v2s2') }
            if ($All) { $a += '--all' }
            if ($PreserveDigests) { $a += '--preserve-digests' }
            if ($Credential) { $a += @('--dest-creds', $Credential) }
            $a += @("oci:${source}:$Tag", "docker://$reg/${Repository}:$dt")
            $null = Invoke-RigTool 'skopeo' $a
            $d = [System.IO.File]::ReadAllText($digestFile).Trim()
            if (-not $digest) { $digest = $d }
            $refs.Add("$reg/${Repository}:$dt")
        }
    }
    finally { Remove-Item -LiteralPath $digestFile -Force -ErrorAction SilentlyContinue }
    [pscustomobject]@{
        Registry             = $reg
        Repository           = $Repository
        Tag                  = $DestinationTag
        Reference            = "$reg/${Repository}:$DestinationTag"
        Digest               = $digest
        DigestReference      = "$reg/$Repository@$digest"
        AdditionalReferences = [string[]]@($refs | Select-Object -Skip 1)
        SourceLayout         = $source
    }
}

function Get-TestRegistryManifest {
    <#
    .SYNOPSIS
    Reads a manifest (or index) from a registry with `skopeo inspect --raw`; returns Digest (sha256 of the exact bytes), MediaType, Json (parsed, as hashtables) and Bytes.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [Parameter(Mandatory, Position = 0)][string] $Reference,
        [string] $Credential
    )
    $tmp = [System.IO.Path]::GetTempFileName()
    try {
        $a = @('inspect', '--raw', '--tls-verify=false')
        if ($Credential) { $a += @('--creds', $Credential) }
        $a += "docker://$Reference"
        # sh writes the bytes untouched (PowerShell would decode and re-encode them)
        $null = Invoke-RigTool '/bin/sh' (@('-c', 'out=$1; shift; exec "$@" > "$out"', 'sh', $tmp, 'skopeo') + $a)
        $bytes = [System.IO.File]::ReadAllBytes($tmp)
    }
    finally { Remove-Item -LiteralPath $tmp -Force -ErrorAction SilentlyContinue }
    $json = $script:Utf8.GetString($bytes) | ConvertFrom-Json -AsHashtable
    [pscustomobject]@{
        Digest    = 'sha256:' + [System.Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData($bytes)).ToLowerInvariant()
        MediaType = $json['mediaType']
        Json      = $json
        Bytes     = $bytes
    }
}

#endregion

#region credentials and child processes

function New-TestAuthConfig {
    <#
    .SYNOPSIS
    Writes a docker config.json / containers auth.json: {"auths": {...}, "credHelpers": {...}, "credsStore": ...}; returns its path.
    .DESCRIPTION
    -Auths: hashtable registry -> 'user:password' (stored as base64 in "auth").
    -CredHelpers: hashtable registry -> helper suffix (docker-credential-<suffix>). -CredsStore: a suffix.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    [OutputType([string])]
    param(
        [Parameter(Mandatory)][string] $Path,
        [hashtable] $Auths,
        [hashtable] $CredHelpers,
        [string] $CredsStore
    )
    $full = Resolve-RigPath $Path
    [void][System.IO.Directory]::CreateDirectory([System.IO.Path]::GetDirectoryName($full))
    $o = [ordered]@{}
    if ($Auths) {
        $a = [ordered]@{}
        foreach ($k in $Auths.Keys) { $a[[string]$k] = [ordered]@{ auth = [System.Convert]::ToBase64String($script:Utf8.GetBytes([string]$Auths[$k])) } }
        $o['auths'] = $a
    }
    if ($CredHelpers) { $o['credHelpers'] = $CredHelpers }
    if ($CredsStore) { $o['credsStore'] = $CredsStore }
    [System.IO.File]::WriteAllText($full, (ConvertTo-Json -InputObject $o -Depth 5), $script:Utf8)
    $full
}

function New-TestCredentialHelper {
    <#
    .SYNOPSIS
    Writes an executable `docker-credential-<Name>` bash script in -Directory that answers `get` with {"ServerURL","Username","Secret"} and appends "<action> <server>" to -LogPath on every call.
    .DESCRIPTION
    Only `get` for -ServerUrl (the registry host, as the client writes it on stdin) answers with
    the credentials; another server gets "credentials not found in native keychain" and exit 1,
    as the real helpers do. Put -Directory first in $env:PATH for the client to find it.
    .OUTPUTS
    The script's path.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    [OutputType([string])]
    param(
        [Parameter(Mandatory)][string] $Directory,
        [string] $Name = 'test',
        [Parameter(Mandatory)][string] $ServerUrl,
        [Parameter(Mandatory)][string] $Username,
        [Parameter(Mandatory)][string] $Secret,
        [Parameter(Mandatory)][string] $LogPath
    )
    $dir = Resolve-RigPath $Directory
    [void][System.IO.Directory]::CreateDirectory($dir)
    $path = Join-Path $dir "docker-credential-$Name"
    $q = { param($s) "'" + $s.Replace("'", "'\''") + "'" }
    $json = ConvertTo-Json -Compress -InputObject ([ordered]@{ ServerURL = $ServerUrl; Username = $Username; Secret = $Secret })
    $script = @"
#!/bin/bash
# docker credential helper for the InitramfsPS tests
action="`$1"
server="`$(cat)"
printf '%s %s\n' "`$action" "`$server" >> $(& $q (Resolve-RigPath $LogPath))
if [ "`$action" != get ]; then exit 0; fi
case "`$server" in
  $(& $q $ServerUrl)|$(& $q "http://$ServerUrl")|$(& $q "https://$ServerUrl"))
    printf '%s\n' $(& $q $json) ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
"@
    [System.IO.File]::WriteAllText($path, ($script -replace "`r`n", "`n"), $script:Utf8)
    & chmod 0755 $path
    $path
}

function Start-PwshProcess {
    <#
    .SYNOPSIS
    Starts a separate PowerShell process (the same pwsh as this one, -NoProfile -NonInteractive) running -Command; stdout and stderr go to files.
    .DESCRIPTION
    Works whether this session is a pwsh executable or `dotnet pwsh` (the dotnet host plus pwsh.dll).
    -Environment adds or overrides variables of the child (the rest is inherited).
    .OUTPUTS
    PSCustomObject: Process, StdOutPath, StdErrPath.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [Parameter(Mandatory)][string] $Command,
        [hashtable] $Environment = @{},
        [string] $Directory
    )
    $dir = if ($Directory) { Resolve-RigPath $Directory } else { New-RigDirectory 'pwsh' }
    [void][System.IO.Directory]::CreateDirectory($dir)
    $id = [guid]::NewGuid().ToString('N').Substring(0, 8)
    $out = Join-Path $dir "pwsh-$id.out"; $err = Join-Path $dir "pwsh-$id.err"
    $host_ = [System.Environment]::ProcessPath
    $argsList = [System.Collections.Generic.List[string]]::new()
    if ([System.IO.Path]::GetFileNameWithoutExtension($host_) -eq 'dotnet') {
        $argsList.Add([System.Environment]::GetCommandLineArgs()[0])   # .../pwsh.dll
    }
    foreach ($a in '-NoProfile', '-NonInteractive', '-Command', $Command) { $argsList.Add($a) }
    $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
    foreach ($a in @('-c', 'o=$1; e=$2; shift 2; exec "$@" </dev/null >"$o" 2>"$e"', 'sh', $out, $err, $host_) + $argsList) { $psi.ArgumentList.Add($a) }
    $psi.UseShellExecute = $false
    foreach ($k in $Environment.Keys) {
        if ($null -eq $Environment[$k]) { [void]$psi.Environment.Remove([string]$k) } else { $psi.Environment[[string]$k] = [string]$Environment[$k] }
    }
    $p = [System.Diagnostics.Process]::Start($psi)
    [pscustomobject]@{ Process = $p; StdOutPath = $out; StdErrPath = $err }
}

function Stop-TestServer {
    <#
    .SYNOPSIS
    Stops any server these helpers start (registry, token server, fault proxy, rogue registry, referrers registry), by its type; $null is ignored.
    #>
    param([AllowNull()] $Server)
    if ($null -eq $Server) { return }
    switch ($Server.PSTypeNames[0]) {
        'InitramfsPS.Test.Registry' { Stop-TestRegistry $Server }
        'InitramfsPS.Test.TokenServer' { Stop-TestTokenServer $Server }
        'InitramfsPS.Test.FaultProxy' { Stop-FaultProxy $Server }
        'InitramfsPS.Test.RogueRegistry' { Stop-RogueRegistry $Server }
        'InitramfsPS.Test.ReferrersRegistry' { Stop-ReferrersRegistry $Server }
        default { throw "Stop-TestServer: unknown server type $($Server.PSTypeNames[0])" }
    }
}

function New-TestCredential {
    <#
    .SYNOPSIS
    A PSCredential from a user name and a plain-text test password.
    #>
    param([string] $User, [string] $Password)
    [pscredential]::new($User, (ConvertTo-SecureString $Password -AsPlainText -Force))
}

#endregion

Export-ModuleMember -Function Start-TestRegistry, Stop-TestRegistry, New-Htpasswd,
    Start-TestTokenServer, Stop-TestTokenServer, Get-TokenServerStats, Reset-TokenServerStats,
    Start-FaultProxy, Stop-FaultProxy, Get-FaultProxyLog, Reset-FaultProxy,
    Start-RogueRegistry, Stop-RogueRegistry, Get-RogueRegistryLog,
    Start-ReferrersRegistry, Stop-ReferrersRegistry, Get-ReferrersRegistryLog, Get-TestRegistryRequest,
    Push-TestImage, Get-TestRegistryManifest, New-TestAuthConfig, New-TestCredentialHelper, Start-PwshProcess,
    Stop-TestServer, New-TestCredential
