# Hostile input, round two: the registry part. A registry, or a proxy before it, that
#  - repeats the request's Authorization header in a 400 body, a 503 reason phrase, a
#    WWW-Authenticate challenge or a token service's error: the password, the base64 user:password
#    and the token appear in no error record, stream or transcript;
#  - never completes the connection, accepts it and never answers, or sends a manifest, a blob or
#    a token one byte a second: RegistryUnavailable naming what stalled, after the retries, within
#    seconds (the timeouts come from INITRAMFSPS_* environment variables set small here);
#  - streams a token, a manifest or an error body forever: read with a cap as it arrives;
#  - makes .NET throw (a file:// or ftp:// token realm, a TLS failure at the realm, a download
#    that keeps dropping, a host with a newline): one ErrorRecord with a stable id each;
#  - redirects to another path on the same host: the Authorization header goes along (and not to
#    another host).
# And validation patterns refuse a trailing newline (references, tags, digests, -Mode, -Owner,
# -Hostname, environment names, rootfs globs).
# Servers: tests/tools/rogue-registry.py (a registry of its own that misbehaves), fault-proxy.py in
# front of docker-registry; all on 127.0.0.1, stopped by PID in AfterAll.

BeforeAll {
    $script:ModulePath = [IO.Path]::GetFullPath(($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1"))
    Import-Module $ModulePath -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/RegistryHelpers.psm1 -Force

    $script:Work = New-TestDirectory -Prefix 'initramfsps-hostile-registry'
    $script:Servers = [System.Collections.Generic.List[object]]::new()

    # --- environment: the machine's credentials stay out; small timeouts and 3 attempts ---
    $script:Limits = [ordered]@{
        INITRAMFSPS_CONNECT_TIMEOUT    = '1'
        INITRAMFSPS_FIRST_BYTE_TIMEOUT = '3'
        INITRAMFSPS_STALL_TIMEOUT      = '2'
        INITRAMFSPS_MIN_TRANSFER_RATE  = '1024'
        INITRAMFSPS_REGISTRY_ATTEMPTS  = '3'
    }
    $script:EnvNames = @('INITRAMFSPS_CACHE', 'HOME', 'DOCKER_CONFIG', 'REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR') + @($Limits.Keys)
    $script:SavedEnv = @{}
    foreach ($n in $EnvNames) { $SavedEnv[$n] = [Environment]::GetEnvironmentVariable($n) }
    $home_ = Join-Path $Work 'home'; $xdg = Join-Path $Work 'xdg'
    $null = New-Item -ItemType Directory -Path $home_, $xdg
    $env:HOME = $home_; $env:XDG_RUNTIME_DIR = $xdg
    Remove-Item Env:DOCKER_CONFIG, Env:REGISTRY_AUTH_FILE -ErrorAction SilentlyContinue
    foreach ($k in $Limits.Keys) { [Environment]::SetEnvironmentVariable($k, $Limits[$k]) }

    function script:Use-FreshCache {
        $env:INITRAMFSPS_CACHE = New-TestDirectory -Parent $Work -Prefix 'cache'
        $env:INITRAMFSPS_CACHE
    }
    $null = Use-FreshCache

    function script:Add-Server($Server) { $Servers.Add($Server); $Server }


    # Runs Get-OciImage in a runspace of its own, so that a pull that hangs can be stopped: after
    # -TimeoutSeconds it is stopped (as Ctrl+C would) and TimedOut is set. Returns Output, Errors,
    # Verbose, Warning, Debug, TimedOut and Seconds.
    function script:Invoke-Pull {
        param([string] $Reference, [hashtable] $Parameters = @{}, [double] $TimeoutSeconds = 30)
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddCommand('Import-Module').AddParameter('Name', $ModulePath).AddStatement()
            $null = $ps.AddCommand('Get-OciImage').AddParameter('Reference', $Reference).AddParameter('Verbose').AddParameter('ErrorAction', 'Continue')
            foreach ($k in $Parameters.Keys) { $null = $ps.AddParameter($k, $Parameters[$k]) }
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $async = $ps.BeginInvoke()
            $finished = $async.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds($TimeoutSeconds))
            if (-not $finished) { $ps.Stop() }
            $out = $null
            $thrown = $null
            try { $out = $ps.EndInvoke($async) } catch { $thrown = $_ }
            $sw.Stop()
            $errors = @($ps.Streams.Error)
            if ($thrown -and $finished) {
                # a terminating error: the shape the issue complains about
                $inner = $thrown.Exception
                while ($inner -is [System.Management.Automation.MethodInvocationException] -and $inner.InnerException) { $inner = $inner.InnerException }
                $errors += if ($inner -is [System.Management.Automation.IContainsErrorRecord]) { $inner.ErrorRecord } else { [System.Management.Automation.ErrorRecord]::new($inner, 'Terminating', 'NotSpecified', $null) }
            }
            [pscustomobject]@{
                Output   = @($out)
                Errors   = $errors
                Verbose  = @($ps.Streams.Verbose | ForEach-Object Message)
                Warning  = @($ps.Streams.Warning | ForEach-Object Message)
                Debug    = @($ps.Streams.Debug | ForEach-Object Message)
                TimedOut = -not $finished
                Seconds  = $sw.Elapsed.TotalSeconds
            }
        }
        finally { $ps.Dispose() }
    }

    # The one error of a pull, checked to be the module's own (an InitramfsException with a stable id).
    function script:Get-OneError($Result, [string] $Id) {
        $Result.TimedOut | Should -BeFalse -Because "Get-OciImage must give up by itself (it was stopped after $([int]$Result.Seconds) s)"
        @($Result.Errors).Count | Should -Be 1 -Because "one failure, one error: $(@($Result.Errors) -join ' | ')"
        $e = $Result.Errors[0]
        $e.Exception | Should -BeOfType [InitramfsPS.Errors.InitramfsException] -Because "the module's error, not a .NET exception: $($e.Exception.GetType().FullName): $($e.Exception.Message)"
        $e.FullyQualifiedErrorId | Should -BeLike "$Id,*"
        $e
    }

    # Every piece of text a record carries that a user or a log could see.
    function script:Get-RecordText([object[]] $Records) {
        $texts = foreach ($r in $Records) {
            if ($null -eq $r) { continue }
            if ($r -is [System.Management.Automation.ErrorRecord]) {
                "$r"; $r.Exception.ToString(); "$($r.Exception.Message)"; "$($r.TargetObject)"; "$($r.ErrorDetails)"; "$($r.CategoryInfo)"
                $r.FullyQualifiedErrorId
                if ($r.Exception -is [InitramfsPS.Errors.InitramfsException]) { "$($r.Exception.Target)" }
                for ($x = $r.Exception.InnerException; $x; $x = $x.InnerException) { $x.Message }
            }
            elseif ($r -is [System.Management.Automation.InformationalRecord]) { $r.Message }
            elseif ($r -is [System.Management.Automation.InformationRecord]) { "$($r.MessageData)" }
            else { ($r | Format-List * -Force | Out-String -Width 4096); "$r" }
        }
        $texts -join "`n"
    }
    function script:Find-Leak([string] $Text, [string[]] $Secrets) { @($Secrets | Where-Object { $_ -and $Text.Contains($_) }) }

    # --- the rogue registry: credentials whose base64 holds '+' and '/' (escaped forms differ) ---
    $script:User = 'robot'
    $script:Password = 'R0gue???>?pw'
    $script:Basic64 = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("${User}:$Password"))
    $script:Token = 'rgtok.' + [guid]::NewGuid().ToString('N') + '.' + [guid]::NewGuid().ToString('N')
    $script:Secrets = @($Password, $Basic64, $Token, $Basic64.Replace('/', '\/'), $Basic64.Replace('+', '\u002b'), [uri]::EscapeDataString($Basic64)) +
        @($Token -split '\.' | Where-Object Length -ge 8)
    $script:Rogue = Add-Server (Start-RogueRegistry -User $User -Password $Password -Token $Token)

    # --- a real registry with a small image, for proxies to misbehave in front of ---
    $lower = New-TestTar -Entry @(
        @{ Name = 'init'; Mode = '0755'; Data = "#!/bin/sh`necho app`n" }
        @{ Name = 'etc/'; Type = 'Dir'; Mode = '0755' }
        @{ Name = 'etc/hostname'; Data = "app`n" })
    $bytes = [byte[]]::new(200KB); [Random]::new(7).NextBytes($bytes)
    $upper = New-TestTar -Entry @(, @{ Name = 'srv/blob.bin'; Data = $bytes })
    $script:App = New-TestOciLayout -Path (Join-Path $Work 'app') -Layer $lower, $upper -Tag app -Config @{ Entrypoint = @('/init') }
    $script:Registry = Add-Server (Start-TestRegistry)
    $script:PushApp = Push-TestImage -Layout $App.Path -Tag app -Registry $Registry.Url -Repository team/app -DestinationTag '1.0'
    # the same image under the name the basic-auth registry uses, for a redirect to another host
    $null = Push-TestImage -Layout $App.Path -Tag app -Registry $Registry.Url -Repository priv/app -DestinationTag '1.0'
    $script:BasicUser = 'alice'
    $script:BasicPassword = 'Sup3r-Secret-pw!'
    $htpasswd = New-Htpasswd -User $BasicUser -Password $BasicPassword -Path (Join-Path $Work 'htpasswd')
    $script:BasicRegistry = Add-Server (Start-TestRegistry -Auth htpasswd -HtpasswdFile $htpasswd)
    $script:PushPrivate = Push-TestImage -Layout $App.Path -Tag app -Registry $BasicRegistry.Url -Repository priv/app -DestinationTag '1.0' -Credential "${BasicUser}:$BasicPassword"
    # the blob the slow and dropping faults aim at: the 200 KB layer
    $script:BigLayer = $App.LayerDigests[1]
}

AfterAll {
    for ($i = $Servers.Count - 1; $i -ge 0; $i--) { Stop-TestServer $Servers[$i] }
    foreach ($n in $EnvNames) { [Environment]::SetEnvironmentVariable($n, $SavedEnv[$n]) }
    if ($Work) { Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'The rig' {
    It 'the rogue registry serves a whole image (a control: nothing wrong)' {
        $null = Use-FreshCache
        $img = Get-OciImage "$($Rogue.Url)/rogue/ok:1.0" -Credential (New-TestCredential $User $Password) -ErrorAction Stop
        $img.Layers.Count | Should -Be 1
        ($img | Expand-OciLayers).GetEntry('/init').Size | Should -BeGreaterThan 0
    }

    It 'the credentials make base64 with + and / (so its escaped forms differ from it)' {
        $Basic64 | Should -Match '\+'
        $Basic64 | Should -Match '/'
    }
}

Describe 'A registry that repeats the Authorization header' {
    BeforeEach { $null = Use-FreshCache }

    It 'in <Where>: <Id>, and no secret in the error record, any stream or the transcript' -ForEach @(
        @{ Where = 'a 400 body (code, message, detail; quoted, JSON-escaped, split)'; Repo = 'echo-body'; Id = 'RegistryRequestFailed' }
        @{ Where = 'the reason phrase of every 503, through the retries'; Repo = 'echo-reason'; Id = 'RegistryUnavailable' }
        @{ Where = 'a WWW-Authenticate challenge (realm and error_description), then the token service''s body and reason phrase'; Repo = 'echo-challenge'; Id = 'RegistryRequestFailed' }
        @{ Where = 'the error_description of the WWW-Authenticate challenge that refuses the credentials'; Repo = 'echo-denied'; Id = 'RegistryCredentialsRefused' }
        @{ Where = 'a 400 body and reason phrase, as a Bearer token'; Repo = 'echo-token'; Id = 'RegistryRequestFailed' }
        @{ Where = 'the token service''s 400 body and reason phrase'; Repo = 'echo-token-error'; Id = 'RegistryRequestFailed' }
    ) {
        $transcript = Join-Path $Work "transcript-$Repo-$([guid]::NewGuid().ToString('N').Substring(0, 6)).txt"
        $Error.Clear()
        $records = [System.Collections.Generic.List[object]]::new()
        $null = Start-Transcript -LiteralPath $transcript
        try {
            $DebugPreference = 'Continue'
            foreach ($r in @(Get-OciImage "$($Rogue.Url)/rogue/$($Repo):1.0" -Credential (New-TestCredential $User $Password) -Verbose -Debug -ErrorAction Continue *>&1)) { $records.Add($r) }
            $records | Out-Host
            # once more with the streams going to the host as they would in a console, so that the transcript writes them as it would
            Get-OciImage "$($Rogue.Url)/rogue/$($Repo):1.0" -Credential (New-TestCredential $User $Password) -Verbose -Debug -ErrorAction Continue 2>&1 | Out-Host
        }
        finally { $null = Stop-Transcript; $DebugPreference = 'SilentlyContinue' }

        $errors = @($records | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $errors.Count | Should -Be 1
        $errors[0].Exception | Should -BeOfType [InitramfsPS.Errors.InitramfsException] -Because "$($errors[0].Exception.GetType().FullName): $($errors[0].Exception.Message)"
        $errors[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        @($records | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Count | Should -BeGreaterThan 0

        Find-Leak (Get-RecordText $records) $Secrets | Should -BeNullOrEmpty -Because 'no stream or error record holds a secret'
        Find-Leak (Get-RecordText @($Error)) $Secrets | Should -BeNullOrEmpty -Because '$Error holds no secret'
        $text = Get-Content -Raw -LiteralPath $transcript
        $text | Should -Match 'VERBOSE: ' -Because 'the transcript recorded the verbose stream'
        Find-Leak $text $Secrets | Should -BeNullOrEmpty -Because 'the transcript holds no secret'
        # The server's words are kept, masked: what follows Basic/Bearer is replaced.
        Get-RecordText $records | Should -Match '(Basic|Bearer) \*\*\*'
        # The server did see the credentials, and did echo them.
        @(Get-RogueRegistryLog $Rogue | Where-Object { $_.Behaviour -like "*$Repo" -and $_.Auth }).Count | Should -BeGreaterThan 0
    }
}

Describe 'A registry that hangs or trickles' {
    BeforeEach { $null = Use-FreshCache }

    It 'a connection that is never established: RegistryUnavailable naming the connection, after 3 attempts' {
        $r = Invoke-Pull "127.0.0.1:$($Rogue.StalledPort)/rogue/ok:1.0"
        $e = Get-OneError $r 'RegistryUnavailable'
        $e.Exception.Message | Should -Match 'connect'
        $e.Exception.Message | Should -Match '\b1 s\b'
        $e.Exception.Message | Should -Match '3 attempts'
        @($r.Verbose | Where-Object { $_ -match 'retrying' }).Count | Should -Be 2
        $r.Seconds | Should -BeLessThan 15
    }

    It 'a registry that accepts the connection and never answers: RegistryUnavailable naming the manifest, after 3 attempts' {
        $tag = "t$(Get-Random)"
        $r = Invoke-Pull "$($Rogue.Url)/rogue/hang:$tag"
        $e = Get-OneError $r 'RegistryUnavailable'
        $e.Exception.Message | Should -Match "manifest '$tag'"
        $e.Exception.Message | Should -Match 'no response within 3 s'
        $e.Exception.Message | Should -Match '3 attempts'
        @(Get-RogueRegistryLog $Rogue | Where-Object { $_.Path -like "*/manifests/$tag" }).Count | Should -Be 3
        @($r.Verbose | Where-Object { $_ -match 'retrying' }).Count | Should -Be 2
        $r.Seconds | Should -BeLessThan 20
    }

    It 'a token service that never answers: RegistryUnavailable naming the token service' {
        $r = Invoke-Pull "$($Rogue.Url)/rogue/token-hang:1.0" -Parameters @{ Credential = (New-TestCredential $User $Password) }
        $e = Get-OneError $r 'RegistryUnavailable'
        $e.Exception.Message | Should -Match 'token service'
        $e.Exception.Message | Should -Match 'no response within 3 s'
        $r.Seconds | Should -BeLessThan 20
    }

    It 'a manifest sent one byte a second: RegistryUnavailable naming the manifest and the stall, after 3 attempts' {
        $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault slow -SlowRate 1 -Match '/manifests/')
        $r = Invoke-Pull "$($px.Url)/team/app:1.0"
        $e = Get-OneError $r 'RegistryUnavailable'
        $e.Exception.Message | Should -Match "manifest '1.0'"
        $e.Exception.Message | Should -Match 'stalled'
        $e.Exception.Message | Should -Match '3 attempts'
        @(Get-FaultProxyLog $px | Where-Object { $_.Kind -eq 'Manifest' -and $_.Method -eq 'GET' }).Count | Should -Be 3
        $r.Seconds | Should -BeLessThan 20
        Stop-TestServer $px
    }

    It 'a blob sent one byte a second: RegistryUnavailable naming the blob and the stall, after 3 attempts' {
        $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault slow -SlowRate 1 -Match ([regex]::Escape("/blobs/$BigLayer") + '$'))
        $r = Invoke-Pull "$($px.Url)/team/app:1.0"
        $e = Get-OneError $r 'RegistryUnavailable'
        $e.Exception.Message | Should -Match ([regex]::Escape($BigLayer.Substring(7, 12)))
        $e.Exception.Message | Should -Match 'stalled'
        $e.Exception.Message | Should -Match '3 attempts'
        @(Get-FaultProxyLog $px -Blob | Where-Object { $_.Digest -eq $BigLayer -and $_.Method -eq 'GET' }).Count | Should -Be 3
        $r.Seconds | Should -BeLessThan 20
        Stop-TestServer $px
    }

    It 'a slow but steady transfer (64 KiB/s, above the minimum rate) completes' {
        $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault slow -SlowRate 64KB)
        $r = Invoke-Pull "$($px.Url)/team/app:1.0" -TimeoutSeconds 60
        $r.TimedOut | Should -BeFalse
        $r.Errors | Should -BeNullOrEmpty
        $r.Output[0].Digest.ToString() | Should -Be $PushApp.Digest
        Stop-TestServer $px
    }

    It 'a timeout that is not a number: RegistrySettingInvalid naming the variable' {
        $saved = $env:INITRAMFSPS_STALL_TIMEOUT
        try {
            $env:INITRAMFSPS_STALL_TIMEOUT = 'soon'
            $r = Invoke-Pull "$($Rogue.Url)/rogue/ok:1.0"
            $e = Get-OneError $r 'RegistrySettingInvalid'
            $e.Exception.Message | Should -Match 'INITRAMFSPS_STALL_TIMEOUT'
        }
        finally { $env:INITRAMFSPS_STALL_TIMEOUT = $saved }
    }
}

Describe 'A registry whose answers never end' {
    BeforeEach { $null = Use-FreshCache }

    It '<What>: <Id> within seconds, after reading a bounded part' -ForEach @(
        @{ What = 'a token answer that streams forever'; Repo = 'endless-token'; Id = 'RegistryResponseTooLarge'; Behaviour = 'token:endless-token' }
        @{ What = 'a manifest that streams forever'; Repo = 'endless-manifest'; Id = 'RegistryResponseTooLarge'; Behaviour = 'endless-manifest' }
        @{ What = 'an error body that streams forever'; Repo = 'endless-error'; Id = 'RegistryRequestFailed'; Behaviour = 'endless-error' }
    ) {
        $r = Invoke-Pull "$($Rogue.Url)/rogue/$($Repo):1.0" -Parameters @{ Credential = (New-TestCredential $User $Password) }
        $null = Get-OneError $r $Id
        $r.Seconds | Should -BeLessThan 15
        $sent = @(Get-RogueRegistryLog $Rogue | Where-Object Behaviour -eq $Behaviour)
        $sent.Count | Should -BeGreaterThan 0
        foreach ($s in $sent) { $s.Bytes | Should -BeLessThan 16MB -Because 'the client stops reading at its cap; it does not take the whole stream' }
    }

    It 'a manifest announcing 1 GiB: RegistryResponseTooLarge at once, before reading it' {
        $r = Invoke-Pull "$($Rogue.Url)/rogue/huge-length:1.0"
        $e = Get-OneError $r 'RegistryResponseTooLarge'
        $e.Exception.Message | Should -Match 'manifest'
        $r.Seconds | Should -BeLessThan 5
    }

    It 'a config whose descriptor says 64 MiB: BlobTooLarge, and it is not downloaded' {
        $r = Invoke-Pull "$($Rogue.Url)/rogue/big-config:1.0"
        $e = Get-OneError $r 'BlobTooLarge'
        $e.Exception.Message | Should -Match 'config'
        @(Get-RogueRegistryLog $Rogue | Where-Object { $_.Behaviour -eq 'big-config' -and $_.Path -like '*/blobs/*' }) | Should -BeNullOrEmpty
    }

    It 'keeps the peak memory of a pull from an endless token service low (child process, VmHWM)' {
        $script = @"
`$env:INITRAMFSPS_CACHE = '$($env:INITRAMFSPS_CACHE)'
Import-Module '$ModulePath'
`$before = [long]((Get-Content /proc/self/status | Where-Object { `$_ -like 'VmHWM:*' }) -replace '\D', '')
`$c = [pscredential]::new('$User', (ConvertTo-SecureString '$($Password.Replace("'", "''"))' -AsPlainText -Force))
try { `$null = Get-OciImage '$($Rogue.Url)/rogue/endless-token:2.0' -Credential `$c -ErrorAction Stop; 'id:none' } catch { 'id:' + `$_.FullyQualifiedErrorId }
`$after = [long]((Get-Content /proc/self/status | Where-Object { `$_ -like 'VmHWM:*' }) -replace '\D', '')
"before:`$before"
"after:`$after"
"@
        $run = Invoke-ChildPwsh $script -TimeoutSeconds 120
        $text = $run.Output
        $text | Should -Match 'id:RegistryResponseTooLarge,'
        $before = [long]([regex]::Match($text, 'before:(\d+)').Groups[1].Value)
        $after = [long]([regex]::Match($text, 'after:(\d+)').Groups[1].Value)
        ($after - $before) * 1KB | Should -BeLessThan 64MB -Because 'the endless answer is not buffered (the server sends up to 256 MiB)'
    }
}

Describe '.NET failures become the module''s errors' {
    BeforeEach { $null = Use-FreshCache }

    It 'a token realm with the <Scheme> scheme: RegistryAuthRealmInvalid' -ForEach @(
        @{ Scheme = 'file'; Repo = 'realm-file' }
        @{ Scheme = 'ftp'; Repo = 'realm-ftp' }
    ) {
        $r = Invoke-Pull "$($Rogue.Url)/rogue/$($Repo):1.0" -Parameters @{ Credential = (New-TestCredential $User $Password) }
        $e = Get-OneError $r 'RegistryAuthRealmInvalid'
        $e.Exception.Message | Should -Match "$($Scheme):"
    }

    It 'an https token realm whose TLS handshake fails: RegistryUnavailable naming the token service and the certificate' {
        $r = Invoke-Pull "$($Rogue.Url)/rogue/realm-tls:1.0" -Parameters @{ Credential = (New-TestCredential $User $Password) }
        $e = Get-OneError $r 'RegistryUnavailable'
        $e.Exception.Message | Should -Match 'token service'
        $e.Exception.Message | Should -Match 'certificate|SSL|TLS'
    }

    It 'a download that keeps dropping until the retries run out: RegistryUnavailable naming the blob' {
        $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault drop-always -Match ([regex]::Escape("/blobs/$BigLayer") + '$'))
        $r = Invoke-Pull "$($px.Url)/team/app:1.0"
        $e = Get-OneError $r 'RegistryUnavailable'
        $e.Exception.Message | Should -Match ([regex]::Escape($BigLayer.Substring(7, 12)))
        $e.Exception.Message | Should -Match '3 attempts'
        @(Get-FaultProxyLog $px -Blob | Where-Object { $_.Digest -eq $BigLayer -and $_.Fault -eq 'drop-always' }).Count | Should -Be 3
        Stop-TestServer $px
    }

    It 'a registry host ending in a newline: InvalidReference' {
        $r = Invoke-Pull "$($Registry.Url)`n/team/app:1.0"
        $null = Get-OneError $r 'InvalidReference'
    }
}

Describe 'A trailing newline passes no validation' {
    BeforeAll {
        $script:Hex = 'a' * 64
    }

    It 'refuses the reference <Text>: InvalidReference' -ForEach @(
        @{ Text = 'a repository component + newline'; Reference = "127.0.0.1:1/team/app`n:1.0" }
        @{ Text = 'a tag + newline, before a digest'; Reference = "127.0.0.1:1/team/app:1.0`n@sha256:$('a' * 64)" }
        @{ Text = 'a tag + newline, at the end'; Reference = "127.0.0.1:1/team/app:1.0`n" }
        @{ Text = 'a digest + newline'; Reference = "127.0.0.1:1/team/app@sha256:$('a' * 64)`n" }
        @{ Text = 'a host + newline'; Reference = "127.0.0.1:1`n/team/app:1.0" }
        @{ Text = 'a docker-archive name:tag + newline'; Reference = "docker-archive:/nonexistent.tar:app`n:1.0" }
    ) {
        $err = $null
        try { $null = Get-OciImage $Reference -ErrorVariable err -ErrorAction SilentlyContinue } catch { $err = @($_) }
        @($err).Count | Should -Be 1
        $err[0].Exception | Should -BeOfType [InitramfsPS.Errors.InitramfsException]
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidReference,*'
    }

    It 'a digest + newline does not parse' {
        $d = [Activator]::CreateInstance([InitramfsPS.Images.Digest])
        [InitramfsPS.Images.Digest]::TryParse("sha256:$Hex`n", [ref]$d) | Should -BeFalse
        [InitramfsPS.Images.Digest]::TryParse("sha512:$('b' * 128)`n", [ref]$d) | Should -BeFalse
        [InitramfsPS.Images.Digest]::TryParse("sha256:$Hex", [ref]$d) | Should -BeTrue
    }

    It 'a pulled manifest naming a layer digest + newline: InvalidDigest, and no such file in the cache' {
        $cache = Use-FreshCache
        $r = Invoke-Pull "$($Rogue.Url)/rogue/newline-digest:1.0"
        $null = Get-OneError $r 'InvalidDigest'
        @(Get-ChildItem -LiteralPath $cache -Recurse -Force | Where-Object { $_.Name -match '\n' }) | Should -BeNullOrEmpty
    }

    Context 'cmdlet parameters' {
        BeforeAll {
            $layer = New-TestTar -Entry @(
                @{ Name = 'bin/'; Type = 'Dir'; Mode = '0755' }
                @{ Name = 'bin/sh'; Mode = '0755'; Data = "#!/bin/sh`n" }
                @{ Name = 'etc/'; Type = 'Dir'; Mode = '0755' }
                @{ Name = 'etc/x'; Data = "x`n" }
                @{ Name = "etc/y`n"; Data = "y`n" })
            $layout = New-TestOciLayout -Path (Join-Path $Work 'params') -Layer @(, $layer) -Tag p -Config @{ Entrypoint = @('/bin/sh'); Env = @("BAD`n=1", 'GOOD=2') }
            $script:ParamRootfs = Get-OciImage $layout.Reference -ErrorAction Stop | Expand-OciLayers
            $script:HostFile = Join-Path $Work 'agent'
            Set-Content -LiteralPath $HostFile -Value 'agent'
        }

        It 'Add-InitramfsFile -<Name> <Shown>: a validation error' -ForEach @(
            @{ Name = 'Mode'; Value = "0755`n"; Shown = '"0755\n"' }
            @{ Name = 'Owner'; Value = "0:0`n"; Shown = '"0:0\n"' }
        ) {
            $p = @{ $Name = $Value }
            { $ParamRootfs | Add-InitramfsFile -Path $HostFile -Destination /usr/bin/agent @p -ErrorAction Stop } |
                Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
        }

        It 'Set-InitramfsInit -Hostname "vm\n": a validation error' {
            { $ParamRootfs | Set-InitramfsInit -Hostname "vm`n" -ErrorAction Stop } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
        }

        It 'an environment name + newline in the image config is not exported by the generated /init' {
            $w = $null
            $r = $ParamRootfs | Set-InitramfsInit -WarningVariable w -WarningAction SilentlyContinue -ErrorAction Stop
            @($w | Where-Object { "$_" -match 'BAD' }).Count | Should -Be 1 -Because "the entry is skipped with a warning: $($w -join ' | ')"
            $out = Join-Path $Work "env-$([guid]::NewGuid().ToString('N')).cpio"
            $null = $r | Export-Initramfs $out -Force -WarningAction SilentlyContinue
            $dir = New-TestDirectory -Parent $Work
            & bsdtar -xf $out -C $dir init
            $init = [IO.File]::ReadAllText((Join-Path $dir init))
            $init | Should -Not -Match 'BAD'
            $init | Should -Match 'GOOD'
        }

        It 'a rootfs glob does not match a name + newline' {
            @($ParamRootfs | Get-InitramfsItem '/etc/[xy]' | ForEach-Object Path) | Should -Be @('/etc/x')
        }
    }
}

Describe 'Redirects' {
    BeforeEach { $null = Use-FreshCache }

    It 'a 307 to another path on the same host keeps the Authorization header (basic auth)' {
        $px = Add-Server (Start-FaultProxy -Upstream $BasicRegistry.Url -Fault redirect -Match '^/v2/.+/(manifests|blobs)/')
        $r = Invoke-Pull "$($px.Url)/priv/app:1.0" -Parameters @{ Credential = (New-TestCredential $BasicUser $BasicPassword) }
        $r.TimedOut | Should -BeFalse
        $r.Errors | Should -BeNullOrEmpty
        $r.Output[0].Digest.ToString() | Should -Be $PushPrivate.Digest
        $log = @(Get-FaultProxyLog $px)
        @($log | Where-Object Status -eq 307).Count | Should -BeGreaterThan 0
        # (the first request of all goes out before the registry asked for credentials, so without them)
        $followed = @($log | Where-Object { $_.Path -like '/__redirect/*' -and $_.Status -ne 401 })
        $followed.Count | Should -BeGreaterOrEqual 4 -Because 'the manifest, the config and the two layers were fetched where they were sent'
        foreach ($f in $followed) {
            $f.Auth | Should -Be 'Basic'
            $f.Status | Should -Be 200
        }
        @($log | Where-Object { $_.Path -like '/__redirect/*' -and $_.Status -eq 401 -and $_.Auth }) | Should -BeNullOrEmpty
        Stop-TestServer $px
    }

    It 'a 307 to another host (localhost instead of 127.0.0.1) drops the Authorization header' {
        $other = Add-Server (Start-FaultProxy -Upstream $Registry.Url)
        $px = Add-Server (Start-FaultProxy -Upstream $BasicRegistry.Url -Fault redirect -RedirectTo "http://localhost:$($other.Port){path}")
        $r = Invoke-Pull "$($px.Url)/priv/app:1.0" -Parameters @{ Credential = (New-TestCredential $BasicUser $BasicPassword) }
        $r.Errors | Should -BeNullOrEmpty
        $r.Output[0].Digest.ToString() | Should -Be $PushPrivate.Digest
        $blobs = @(Get-FaultProxyLog $other -Blob)
        $blobs.Count | Should -BeGreaterOrEqual 3
        foreach ($b in $blobs) { $b.Auth | Should -BeNullOrEmpty }
        Stop-TestServer $px
        Stop-TestServer $other
    }
}
