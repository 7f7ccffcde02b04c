# Registry pulls (issue 4): Get-OciImage against a real registry (docker-registry 2.8 on 127.0.0.1)
# with images pushed by skopeo, compared with the same images read from their OCI layouts.
#  - media types (OCI, Docker v2s2), gzip and zstd layers, an OCI index resolved per platform,
#    pulls by tag and by digest, not-found errors;
#  - the cache: no blob downloaded twice, -Offline, Get-OciCache -Verify, Clear-OciCache, the
#    download parallelism, four processes sharing one cache;
#  - basic auth (htpasswd) with credentials from -Credential, auth files and credential helpers;
#    the token (Bearer) flow against tests/tools/token-server.py, tokens fetched once per scope;
#  - faults injected by tests/tools/fault-proxy.py: 429 and 503 answers, a connection dropped
#    halfway through a blob (resumed with a Range request), a flipped byte (DigestMismatch);
#  - the pulled image exported and extracted by GNU cpio against `skopeo copy` + `umoci unpack`;
#  - secrets never in verbose output, errors or objects.
# Every server binds to 127.0.0.1 on a free port and is stopped (by PID) in AfterAll.
# Needs docker-registry, skopeo, umoci, htpasswd, openssl, python3, cpio; root for the umoci check.

BeforeDiscovery {
    $script:IsRoot = ((& id -u) -eq '0')
    # A name other than localhost that /etc/hosts maps to 127.0.0.1: plain HTTP to it must be
    # refused unless -AllowPlainHttp (the automatic plain HTTP is for localhost and loopback IPs).
    $script:LoopbackAlias = $null
    if (Test-Path /etc/hosts) {
        $script:LoopbackAlias = Get-Content /etc/hosts | ForEach-Object { ($_ -replace '#.*$', '').Trim() } |
            Where-Object { $_ -match '^127\.0\.0\.1\s' } | ForEach-Object { ($_ -split '\s+') | Select-Object -Skip 1 } |
            Where-Object { $_ -and $_ -notmatch '^localhost' -and $_ -match '^[a-z][a-z0-9-]*$' } | Select-Object -First 1
    }
}

BeforeAll {
    $script:ModulePath = [IO.Path]::GetFullPath(($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1"))
    Import-Module $ModulePath -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/RegistryHelpers.psm1 -Force

    $script:Work = New-TestDirectory -Prefix 'initramfsps-registry'
    $script:Servers = [System.Collections.Generic.List[object]]::new()

    # --- environment: no credentials of the machine's user may leak into a test ---
    $script:EnvNames = 'INITRAMFSPS_CACHE', 'HOME', 'DOCKER_CONFIG', 'REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR', 'PATH'
    $script:SavedEnv = @{}
    foreach ($n in $EnvNames) { $SavedEnv[$n] = [Environment]::GetEnvironmentVariable($n) }

    # Points HOME and XDG_RUNTIME_DIR at new empty directories and unsets DOCKER_CONFIG and
    # REGISTRY_AUTH_FILE; returns the directories.
    function script:Reset-CredentialEnvironment {
        $root = New-TestDirectory -Parent $Work -Prefix 'creds'
        $h = Join-Path $root 'home'; $x = Join-Path $root 'xdg'
        $null = New-Item -ItemType Directory -Path $h, $x
        $env:HOME = $h
        $env:XDG_RUNTIME_DIR = $x
        Remove-Item Env:DOCKER_CONFIG, Env:REGISTRY_AUTH_FILE -ErrorAction SilentlyContinue
        [pscustomobject]@{ Root = $root; Home = $h; Xdg = $x }
    }
    $null = Reset-CredentialEnvironment

    # A fresh, empty cache for the tests that count downloads; returns its path.
    function script:Use-FreshCache {
        $env:INITRAMFSPS_CACHE = New-TestDirectory -Parent $Work -Prefix 'cache'
        $env:INITRAMFSPS_CACHE
    }
    $null = Use-FreshCache

    function script:Add-Server($Server) { $Servers.Add($Server); $Server }

    # Runs $Pull with errors made terminating and returns the ErrorRecord; fails the test when the
    # pull succeeds.
    function script:Get-PullError([scriptblock] $Pull) {
        $ErrorActionPreference = 'Stop'
        $out = $null
        try { $out = & $Pull }
        catch { return $_ }
        throw "Expected an error, but the pull succeeded: $(@($out) -join ', ')"
    }


    # "path type mode uid:gid size target major:minor mtime" for every entry of an expanded image.
    function script:Get-EntrySummary($Rootfs) {
        @($Rootfs.GetEntries() | ForEach-Object {
                '{0} {1} {2} {3}:{4} {5} {6} {7}:{8} {9}' -f $_.Path, $_.Type, $_.ModeString, $_.Uid, $_.Gid, $_.Size, $_.LinkTarget, $_.DevMajor, $_.DevMinor, $_.MTime
            })
    }

    # The entries (with content hashes) of an archive exported with -NoDefaultEntries.
    function script:Get-ExportSummary($Image, [string] $Name) {
        $out = Join-Path $Work "$Name-$([guid]::NewGuid().ToString('N').Substring(0, 6)).cpio"
        $null = $Image | Export-Initramfs $out -NoDefaultEntries
        @(Get-CpioListing $out | ForEach-Object { '{0} {1:x} {2}:{3} {4} {5} {6} {7}:{8}' -f $_.Name, $_.Mode, $_.Uid, $_.Gid, $_.Size, $_.DataSha256, $_.LinkTarget, $_.RDevMajor, $_.RDevMinor })
    }

    function script:Get-BlobFile([string] $Digest) {
        Join-Path $env:INITRAMFSPS_CACHE ('blobs/sha256/' + ($Digest -replace '^sha256:', ''))
    }

    function script:Get-FileSha256([string] $Path) { 'sha256:' + (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant() }

    # The most blob GETs in flight at once, from the proxy's log.
    function script:Get-MaxConcurrency($Records) {
        $max = 0
        foreach ($r in $Records) {
            $n = @($Records | Where-Object { $_.T0 -le $r.T0 -and $_.T1 -gt $r.T0 }).Count
            if ($n -gt $max) { $max = $n }
        }
        $max
    }

    function script:New-RandomBytes([int] $Length, [int] $Seed) {
        $b = [byte[]]::new($Length); [Random]::new($Seed).NextBytes($b); , $b
    }

    # --- the test images ---
    # A three-layer image: modes, owners, setuid, a device, a fifo, symlinks, a hardlink across
    # layers, a whiteout, an opaque directory, and a /init.
    $lower = New-TestTar -Entry @(
        @{ Name = 'bin/'; Type = 'Dir'; Mode = '0755' }
        @{ Name = 'bin/app'; Mode = '0755'; Data = "#!/bin/sh`necho app`n" }
        @{ Name = 'bin/sh'; Type = 'Symlink'; LinkName = 'app' }
        @{ Name = 'etc/'; Type = 'Dir'; Mode = '0755' }
        @{ Name = 'etc/passwd'; Data = "root:x:0:0:root:/root:/bin/sh`napp:x:1000:1000::/srv:/bin/sh`n"; MTime = 1690000000 }
        @{ Name = 'etc/hostname'; Data = "lower`n" }
        @{ Name = 'etc/shadow'; Mode = '0640'; Gid = 42; Data = "root:*:19000:0:99999:7:::`n" }
        @{ Name = 'usr/'; Type = 'Dir'; Mode = '0755' }
        @{ Name = 'usr/bin/'; Type = 'Dir'; Mode = '0755' }
        @{ Name = 'usr/bin/su'; Mode = '4755'; Data = "setuid stand-in`n" }
        @{ Name = 'tmp/'; Type = 'Dir'; Mode = '1777' }
        @{ Name = 'srv/'; Type = 'Dir'; Mode = '0750'; Uid = 1000; Gid = 1000 }
        @{ Name = 'srv/data/'; Type = 'Dir'; Mode = '0755'; Uid = 1000; Gid = 1000 }
        @{ Name = 'srv/data/old.txt'; Data = "old`n" }
        @{ Name = 'dev/'; Type = 'Dir'; Mode = '0755' }
        @{ Name = 'dev/null'; Type = 'CharDevice'; DevMajor = 1; DevMinor = 3; Mode = '0666' }
        @{ Name = 'run/'; Type = 'Dir'; Mode = '0755' }
        @{ Name = 'run/initctl'; Type = 'Fifo'; Mode = '0600' }
    )
    $middle = New-TestTar -Entry @(
        @{ Name = 'etc/'; Type = 'Dir'; Mode = '0755' }
        @{ Name = 'etc/.wh.hostname' }
        @{ Name = 'etc/passwd-'; Type = 'Hardlink'; LinkName = 'etc/passwd' }
        @{ Name = 'srv/data/'; Type = 'Dir'; Mode = '0755'; Uid = 1000; Gid = 1000 }
        @{ Name = 'srv/data/.wh..wh..opq' }
        @{ Name = 'srv/data/new.txt'; Data = "new`n"; Uid = 1000; Gid = 1000 }
        @{ Name = 'lib/'; Type = 'Dir'; Mode = '0755' }
        @{ Name = 'lib/libfoo.so'; Type = 'Symlink'; LinkName = '/usr/lib/libfoo.so.1' }
    )
    $upper = New-TestTar -Entry @(
        @{ Name = 'init'; Mode = '0755'; Data = "#!/bin/sh`nexec /bin/app`n" }
        @{ Name = 'srv/blob.bin'; Data = (New-RandomBytes 200KB 1) }
    )
    $script:AppConfig = [ordered]@{
        Entrypoint = @('/bin/app'); Cmd = @('--serve', '--port=8080'); Env = @('PATH=/usr/bin:/bin', 'MODE=test')
        WorkingDir = '/srv'; User = '1000:1000'; Labels = @{ 'org.example.name' = 'app'; 'org.example.tier' = 'test' }
    }
    $script:App = New-TestOciLayout -Path (Join-Path $Work 'app') -Layer $lower, $middle, $upper -Tag app -Config $AppConfig
    $script:AppLayoutRef = $App.Reference

    # Two platforms under one index; their files differ.
    $multiDir = Join-Path $Work 'multi'
    $script:Amd = New-TestOciLayout -Path $multiDir -Tag amd -Architecture amd64 -Layer @(, (New-TestTar -Entry @(
                @{ Name = 'init'; Mode = '0755'; Data = "#!/bin/sh`n" }, @{ Name = 'arch'; Data = "amd64`n" })))
    $script:Arm = New-TestOciLayout -Path $multiDir -Tag arm -Architecture arm64 -Variant v8 -Layer @(, (New-TestTar -Entry @(
                @{ Name = 'init'; Mode = '0755'; Data = "#!/bin/sh`n" }, @{ Name = 'arch'; Data = "arm64 v8`n" })))
    $script:Index = New-TestOciIndex -Path $multiDir -Tag multi -Manifest $Amd, $Arm

    # A 3 MB incompressible layer (a drop halfway is mid-stream) and a 1 MB one.
    $script:Big = New-TestOciLayout -Path (Join-Path $Work 'big') -Tag big -Layer @(
        (New-TestTar -Entry @(@{ Name = 'init'; Mode = '0755'; Data = "#!/bin/sh`n" }, @{ Name = 'big.bin'; Data = (New-RandomBytes 3MB 2) })),
        (New-TestTar -Entry @(@{ Name = 'more.bin'; Data = (New-RandomBytes 1MB 3) })))

    # Five 200 KB layers: parallelism, token caching.
    $script:Many = New-TestOciLayout -Path (Join-Path $Work 'many') -Tag many -Layer @(
        foreach ($i in 1..5) { , (New-TestTar -Entry @(@{ Name = "layer$i.bin"; Data = (New-RandomBytes 200KB (10 + $i)) })) })

    # --- servers and pushes ---
    $script:Registry = Add-Server (Start-TestRegistry)
    $R = $Registry.Url
    $script:PushApp = Push-TestImage -Layout $App.Path -Tag app -Registry $R -Repository team/app -DestinationTag '1.0' -AdditionalTag latest
    $script:PushDocker = Push-TestImage -Layout $App.Path -Tag app -Registry $R -Repository team/app-docker -DestinationTag '1.0' -DockerV2S2
    $script:PushZstd = Push-TestImage -Layout $App.Path -Tag app -Registry $R -Repository team/app-zstd -DestinationTag '1.0' -Zstd
    $script:ZstdManifest = Get-TestRegistryManifest $PushZstd.Reference
    $script:DockerManifest = Get-TestRegistryManifest $PushDocker.Reference
    $script:PushMulti = Push-TestImage -Layout $multiDir -Tag multi -Registry $R -Repository team/multi -DestinationTag '1.0' -All
    $script:PushBig = Push-TestImage -Layout $Big.Path -Tag big -Registry $R -Repository team/big -DestinationTag '1.0'
    $script:PushMany = Push-TestImage -Layout $Many.Path -Tag many -Registry $R -Repository team/many -DestinationTag '1.0'

    # basic auth
    $script:BasicUser = 'alice'
    $script:BasicPassword = 'Sup3r-Secret-pw!'
    $htpasswd = New-Htpasswd -User $BasicUser -Password $BasicPassword -Path (Join-Path $Work 'htpasswd')
    $script:BasicRegistry = Add-Server (Start-TestRegistry -Auth htpasswd -HtpasswdFile $htpasswd)
    $script:PushPrivate = Push-TestImage -Layout $App.Path -Tag app -Registry $BasicRegistry.Url -Repository priv/app -DestinationTag '1.0' -Credential "${BasicUser}:$BasicPassword"

    # token auth
    $script:TokenUser = 'tokenuser'
    $script:TokenPassword = 'T0ken-Pass-word!'
    $script:TokenServer = Add-Server (Start-TestTokenServer -Service 'initramfsps-registry' -Issuer 'initramfsps-token-issuer' -Users @{ $TokenUser = $TokenPassword })
    $script:TokenRegistry = Add-Server (Start-TestRegistry -Auth token -Token $TokenServer)
    $script:PushToken = Push-TestImage -Layout $Many.Path -Tag many -Registry $TokenRegistry.Url -Repository pub/many -DestinationTag '1.0' -Credential "${TokenUser}:$TokenPassword"

    # a credential helper on PATH: docker-credential-test answers for the basic-auth registry
    $script:HelperBin = Join-Path $Work 'bin'
    $script:HelperLog = Join-Path $Work 'credential-helper.log'
    $null = New-TestCredentialHelper -Directory $HelperBin -Name test -ServerUrl $BasicRegistry.Url -Username $BasicUser -Secret $BasicPassword -LogPath $HelperLog
    $env:PATH = "$HelperBin$([IO.Path]::PathSeparator)$env:PATH"
}

AfterAll {
    for ($i = $Servers.Count - 1; $i -ge 0; $i--) { Stop-TestServer $Servers[$i] }
    foreach ($n in $EnvNames) { [Environment]::SetEnvironmentVariable($n, $SavedEnv[$n]) }
    if ($Work) { Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'The test rig' {
    It 'pushed what the tests assume (media types, compression, index, manifest digests)' {
        $PushApp.Digest | Should -Be $App.ManifestDigest        # skopeo keeps an OCI gzip image as it is
        $DockerManifest.MediaType | Should -Be 'application/vnd.docker.distribution.manifest.v2+json'
        $DockerManifest.Json.layers.mediaType | Select-Object -Unique | Should -Be 'application/vnd.docker.image.rootfs.diff.tar.gzip'
        $ZstdManifest.Json.layers.mediaType | Select-Object -Unique | Should -Be 'application/vnd.oci.image.layer.v1.tar+zstd'
        $PushMulti.Digest | Should -Be $Index.IndexDigest
        (Get-TestRegistryManifest $PushMulti.Reference).Json.manifests.digest | Should -Be @($Amd.ManifestDigest, $Arm.ManifestDigest)
        $Big.LayerSizes[0] | Should -BeGreaterThan 3000000
    }

    It 'runs every server on 127.0.0.1 only, as a child it can stop' {
        foreach ($s in $Servers) {
            $s.Pid | Should -BeGreaterThan 0
            Test-Path "/proc/$($s.Pid)" | Should -BeTrue
        }
        $listen = (& ss -Hltn 2>$null) -join "`n"
        if ($listen) {
            foreach ($s in $Servers) { $listen | Should -Match ("127\.0\.0\.1:$($s.Port)\s") }
            foreach ($s in $Servers) { $listen | Should -Not -Match ("(0\.0\.0\.0|\*|\[::\]):$($s.Port)\s") }
        }
    }

    It 'the token registry refuses an anonymous push and the basic one an anonymous read' {
        { Push-TestImage -Layout $Many.Path -Tag many -Registry $TokenRegistry.Url -Repository pub/other } | Should -Throw
        { Get-TestRegistryManifest $PushPrivate.Reference } | Should -Throw
    }

    Context 'the token server and the fault proxy by themselves (plain HttpClient, no module)' {
        BeforeAll {
            $script:Http = [System.Net.Http.HttpClient]::new()
            $Http.Timeout = [TimeSpan]::FromSeconds(30)
            # GET -> status, headers, the bytes read, and whether the body ended early (an exception).
            function script:Invoke-RigGet([string] $Url, [hashtable] $Headers = @{}) {
                $req = [System.Net.Http.HttpRequestMessage]::new([System.Net.Http.HttpMethod]::Get, $Url)
                foreach ($k in $Headers.Keys) { [void]$req.Headers.TryAddWithoutValidation($k, [string]$Headers[$k]) }
                $resp = $Http.SendAsync($req, [System.Net.Http.HttpCompletionOption]::ResponseHeadersRead).GetAwaiter().GetResult()
                $ms = [IO.MemoryStream]::new(); $broken = $false
                try { $resp.Content.ReadAsStream().CopyTo($ms) } catch { $broken = $true }
                [pscustomobject]@{
                    Status = [int]$resp.StatusCode; Headers = $resp.Headers; Length = $resp.Content.Headers.ContentLength
                    Bytes = $ms.ToArray(); Broken = $broken; RetryAfter = $resp.Headers.RetryAfter
                }
            }
            function script:ConvertFrom-Base64Url([string] $s) {
                $s = $s.Replace('-', '+').Replace('_', '/'); $s += '=' * ((4 - $s.Length % 4) % 4)
                [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($s)) | ConvertFrom-Json
            }
            $script:BlobPath = "/v2/team/big/blobs/$($Big.LayerDigests[0])"
            $script:BlobBytes = [IO.File]::ReadAllBytes((Join-Path $Big.Path ('blobs/sha256/' + $Big.LayerDigests[0].Substring(7))))
        }
        AfterAll { $Http.Dispose() }

        It 'the token server grants pull to anyone, pull and push to a user, and refuses a wrong password' {
            $base = "$($TokenServer.Url)?service=$($TokenServer.Service)&scope=repository:pub/x:pull,push"
            $anon = [Text.Encoding]::UTF8.GetString((Invoke-RigGet $base).Bytes) | ConvertFrom-Json
            $parts = $anon.token -split '\.'
            $anon.access_token | Should -Be $anon.token
            $anon.expires_in | Should -Be 300
            $header = ConvertFrom-Base64Url $parts[0]; $claims = ConvertFrom-Base64Url $parts[1]
            $header.alg | Should -Be 'RS256'
            $header.x5c[0] | Should -Be ((Get-Content $TokenServer.CertPath | Where-Object { $_ -notmatch '^-----' }) -join '')
            $claims.iss | Should -Be $TokenServer.Issuer
            $claims.aud | Should -Be $TokenServer.Service
            ($claims.exp - $claims.iat) | Should -Be 300
            $claims.access[0].name | Should -Be 'pub/x'
            @($claims.access[0].actions) | Should -Be @('pull')

            $basic = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("${TokenUser}:$TokenPassword"))
            $user = [Text.Encoding]::UTF8.GetString((Invoke-RigGet $base @{ Authorization = "Basic $basic" }).Bytes) | ConvertFrom-Json
            @((ConvertFrom-Base64Url ($user.token -split '\.')[1]).access[0].actions) | Should -Be @('pull', 'push')

            $wrong = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("${TokenUser}:nope"))
            (Invoke-RigGet $base @{ Authorization = "Basic $wrong" }).Status | Should -Be 401
        }

        It 'the fault proxy answers 429 once (Retry-After), then passes the blob through unchanged' {
            $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault '429-once' -RetryAfter 1)
            $first = Invoke-RigGet "http://$($px.Url)$BlobPath"
            $first.Status | Should -Be 429
            $first.RetryAfter.Delta.TotalSeconds | Should -Be 1
            $second = Invoke-RigGet "http://$($px.Url)$BlobPath"
            $second.Status | Should -Be 200
            [Convert]::ToHexString($second.Bytes) | Should -Be ([Convert]::ToHexString($BlobBytes))
            (Get-FaultProxyLog $px).Status | Should -Be @(429, 200)
            Stop-TestServer $px
        }

        It 'the fault proxy drops the first GET halfway (full Content-Length), then serves a Range resume' {
            $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault drop-half)
            $first = Invoke-RigGet "http://$($px.Url)$BlobPath"
            $first.Status | Should -Be 200
            $first.Length | Should -Be $BlobBytes.Length
            $first.Broken | Should -BeTrue
            $first.Bytes.Length | Should -BeLessThan $BlobBytes.Length
            $rest = Invoke-RigGet "http://$($px.Url)$BlobPath" @{ Range = "bytes=$($first.Bytes.Length)-" }
            $rest.Status | Should -Be 206
            $joined = [IO.MemoryStream]::new(); $joined.Write($first.Bytes); $joined.Write($rest.Bytes)
            [Convert]::ToHexString($joined.ToArray()) | Should -Be ([Convert]::ToHexString($BlobBytes))
            $log = @(Get-FaultProxyLog $px)
            $log[0].Fault | Should -Be 'drop-half'
            $log[0].Complete | Should -BeFalse
            $log[1].Range | Should -Be "bytes=$($first.Bytes.Length)-"
            Stop-TestServer $px
        }

        It 'the fault proxy flips exactly the middle byte of a blob, also inside a range' {
            $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault flip-byte)
            $got = (Invoke-RigGet "http://$($px.Url)$BlobPath").Bytes
            $got.Length | Should -Be $BlobBytes.Length
            $mid = [int][Math]::Floor($BlobBytes.Length / 2)
            $diff = @(for ($i = $mid - 2; $i -le $mid + 2; $i++) { if ($got[$i] -ne $BlobBytes[$i]) { $i } })
            $diff | Should -Be @($mid)
            $got[$mid] = $got[$mid] -bxor 0xFF
            [Convert]::ToHexString($got) | Should -Be ([Convert]::ToHexString($BlobBytes))
            $tail = (Invoke-RigGet "http://$($px.Url)$BlobPath" @{ Range = "bytes=$($mid - 10)-" }).Bytes
            $tail[10] | Should -Be ($BlobBytes[$mid] -bxor 0xFF)
            Stop-TestServer $px
        }
    }
}

Describe 'Pulling from a registry' {
    Context 'an OCI image with gzip layers, by tag' {
        BeforeAll {
            $null = Use-FreshCache
            $script:Img = Get-OciImage "$($Registry.Url)/team/app:1.0" -ErrorAction Stop
        }

        It 'returns one image with the registry''s manifest digest, for linux/amd64' {
            @($Img).Count | Should -Be 1
            $Img | Should -BeOfType ([InitramfsPS.Images.OciImage])
            $Img.Digest.ToString() | Should -Be $PushApp.Digest
            $Img.Platform.ToString() | Should -Be 'linux/amd64'
            "$($Img.Reference)" | Should -Match ([regex]::Escape("$($Registry.Url)/team/app"))
        }

        It 'reads the config: entrypoint, cmd, env, working directory, user, labels' {
            $Img.Config.Entrypoint | Should -Be $AppConfig.Entrypoint
            $Img.Config.Cmd | Should -Be $AppConfig.Cmd
            $Img.Config.Env | Should -Be $AppConfig.Env
            $Img.Config.WorkingDir | Should -Be '/srv'
            $Img.Config.User | Should -Be '1000:1000'
            $Img.Config.Labels['org.example.name'] | Should -Be 'app'
            $Img.Config.Labels['org.example.tier'] | Should -Be 'test'
        }

        It 'lists the layers with digest, size, media type and compression' {
            $Img.Layers.Count | Should -Be 3
            @($Img.Layers | ForEach-Object { "$($_.Digest)" }) | Should -Be $App.LayerDigests
            @($Img.Layers | ForEach-Object { [long]$_.Size }) | Should -Be $App.LayerSizes
            @($Img.Layers.MediaType | Select-Object -Unique) | Should -Be 'application/vnd.oci.image.layer.v1.tar+gzip'
            @($Img.Layers | ForEach-Object { "$($_.Compression)" } | Select-Object -Unique) | Should -Be 'Gzip'
            $Img.Size | Should -Be (($App.LayerSizes | Measure-Object -Sum).Sum)
        }

        It 'stores the config and every layer in the cache under its digest' {
            foreach ($d in @($App.ConfigDigest) + $App.LayerDigests) {
                $f = Get-BlobFile $d
                $f | Should -Exist
                Get-FileSha256 $f | Should -Be $d
            }
        }

        It 'expands to the same entries as the image read from its layout, with the same content' {
            $local = Get-OciImage $AppLayoutRef -ErrorAction Stop
            $pulled = Get-EntrySummary ($Img | Expand-OciLayers)
            $pulled | Should -Be (Get-EntrySummary ($local | Expand-OciLayers))
            $pulled | Should -Not -BeNullOrEmpty
            Get-ExportSummary $Img 'pulled' | Should -Be (Get-ExportSummary $local 'local')
        }
    }

    Context 'media types and compression' {
        It 'pulls a Docker v2s2 image: Docker media types, same entries' {
            $null = Use-FreshCache
            $img = Get-OciImage "$($Registry.Url)/team/app-docker:1.0" -ErrorAction Stop
            $img.Digest.ToString() | Should -Be $PushDocker.Digest
            $img.Digest.ToString() | Should -Be $DockerManifest.Digest
            @($img.Layers.MediaType | Select-Object -Unique) | Should -Be 'application/vnd.docker.image.rootfs.diff.tar.gzip'
            @($img.Layers | ForEach-Object { "$($_.Compression)" } | Select-Object -Unique) | Should -Be 'Gzip'
            $img.Config.Entrypoint | Should -Be $AppConfig.Entrypoint
            Get-EntrySummary ($img | Expand-OciLayers) | Should -Be (Get-EntrySummary (Get-OciImage $AppLayoutRef | Expand-OciLayers))
        }

        It 'pulls zstd layers: zstd media type and compression, same entries' {
            $null = Use-FreshCache
            $img = Get-OciImage "$($Registry.Url)/team/app-zstd:1.0" -ErrorAction Stop
            $img.Digest.ToString() | Should -Be $ZstdManifest.Digest
            @($img.Layers | ForEach-Object { "$($_.Digest)" }) | Should -Be @($ZstdManifest.Json.layers.digest)
            @($img.Layers.MediaType | Select-Object -Unique) | Should -Be 'application/vnd.oci.image.layer.v1.tar+zstd'
            @($img.Layers | ForEach-Object { "$($_.Compression)" } | Select-Object -Unique) | Should -Be 'Zstd'
            Get-EntrySummary ($img | Expand-OciLayers) | Should -Be (Get-EntrySummary (Get-OciImage $AppLayoutRef | Expand-OciLayers))
            Get-ExportSummary $img 'zstd' | Should -Be (Get-ExportSummary (Get-OciImage $AppLayoutRef) 'zstd-local')
        }
    }

    Context 'references' {
        It 'pulls by digest' {
            $img = Get-OciImage "$($Registry.Url)/team/app@$($PushApp.Digest)" -ErrorAction Stop
            $img.Digest.ToString() | Should -Be $PushApp.Digest
            @($img.Layers | ForEach-Object { "$($_.Digest)" }) | Should -Be $App.LayerDigests
        }

        It 'pulls a second tag of the same manifest' {
            (Get-OciImage "$($Registry.Url)/team/app:latest" -ErrorAction Stop).Digest.ToString() | Should -Be $PushApp.Digest
        }

        It 'takes several references in one call, in order' {
            $imgs = @(Get-OciImage "$($Registry.Url)/team/app:1.0", "$($Registry.Url)/team/app-docker:1.0" -ErrorAction Stop)
            $imgs.Count | Should -Be 2
            $imgs[0].Digest.ToString() | Should -Be $PushApp.Digest
            $imgs[1].Digest.ToString() | Should -Be $PushDocker.Digest
        }
    }

    Context 'a multi-platform index' {
        It 'resolves to linux/amd64 by default' {
            $img = Get-OciImage "$($Registry.Url)/team/multi:1.0" -ErrorAction Stop
            $img.Digest.ToString() | Should -Be $Amd.ManifestDigest
            $img.Platform.ToString() | Should -Be 'linux/amd64'
            ($img | Expand-OciLayers).GetEntry('/arch').Size | Should -Be "amd64`n".Length
        }

        It 'resolves to <Platform>' -ForEach @(
            @{ Platform = 'linux/arm64/v8' }
            @{ Platform = 'linux/arm64' }
        ) {
            $img = Get-OciImage "$($Registry.Url)/team/multi:1.0" -Platform $Platform -ErrorAction Stop
            $img.Digest.ToString() | Should -Be $Arm.ManifestDigest
            $img.Platform.Architecture | Should -Be 'arm64'
            $img.Platform.ToString() | Should -BeLike 'linux/arm64*'
            ($img | Expand-OciLayers).GetEntry('/arch').Size | Should -Be "arm64 v8`n".Length
        }

        It 'resolves an index pulled by its digest' {
            $img = Get-OciImage "$($Registry.Url)/team/multi@$($PushMulti.Digest)" -Platform linux/arm64/v8 -ErrorAction Stop
            $img.Digest.ToString() | Should -Be $Arm.ManifestDigest
        }

        It 'fails with PlatformNotFound naming the platforms the index has' {
            $e = Get-PullError { Get-OciImage "$($Registry.Url)/team/multi:1.0" -Platform linux/s390x }
            $e.FullyQualifiedErrorId | Should -BeLike 'PlatformNotFound,*'
            $e.Exception.Message | Should -Match 'linux/s390x'
            $e.Exception.Message | Should -Match 'linux/amd64'
            $e.Exception.Message | Should -Match 'linux/arm64'
        }
    }

    Context 'what is not there' {
        It 'a repository the registry does not know: RepositoryNotFound naming it' {
            # docker-registry 2.8 answers a manifest GET in an unknown repository with 404
            # MANIFEST_UNKNOWN (tags/list says NAME_UNKNOWN): the error must still name the repository.
            $e = Get-PullError { Get-OciImage "$($Registry.Url)/team/no-such-repo:1.0" }
            $e.FullyQualifiedErrorId | Should -BeLike 'RepositoryNotFound,*'
            $e.Exception.Message | Should -Match 'team/no-such-repo'
            "$($e.CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
        }

        It 'a 404 NAME_UNKNOWN answer: RepositoryNotFound naming the repository' {
            $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault '404-always:NAME_UNKNOWN' -Match '/manifests/')
            $e = Get-PullError { Get-OciImage "$($px.Url)/team/app:1.0" }
            $e.FullyQualifiedErrorId | Should -BeLike 'RepositoryNotFound,*'
            $e.Exception.Message | Should -Match 'team/app'
        }

        It 'a tag the repository does not have: TagNotFound naming the tag' {
            $e = Get-PullError { Get-OciImage "$($Registry.Url)/team/app:no-such-tag" }
            $e.FullyQualifiedErrorId | Should -BeLike 'TagNotFound,*'
            $e.Exception.Message | Should -Match 'no-such-tag'
            "$($e.CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
        }

        It 'a 403 answer: RegistryAccessDenied' {
            $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault '403-always' -Match '/manifests/')
            $e = Get-PullError { Get-OciImage "$($px.Url)/team/app:1.0" }
            $e.FullyQualifiedErrorId | Should -BeLike 'RegistryAccessDenied,*'
            "$($e.CategoryInfo.Category)" | Should -BeIn 'PermissionDenied', 'SecurityError', 'AuthenticationError'
        }

        It 'plain HTTP to <Alias>, a name for 127.0.0.1 that is not localhost: PlainHttpRefused without -AllowPlainHttp' -Skip:(-not $LoopbackAlias) -ForEach @(
            @{ Alias = $LoopbackAlias }
        ) {
            # Through a logging proxy: a plain HTTP request would show in its log (a TLS hello
            # does not: it is no HTTP request).
            $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault none)
            $ref = "$($Alias):$($px.Port)/team/app:1.0"
            $e = Get-PullError { Get-OciImage $ref }
            @(Get-FaultProxyLog $px) | Should -BeNullOrEmpty -Because 'nothing may go over plain HTTP unless asked'
            $e.FullyQualifiedErrorId | Should -BeLike 'PlainHttpRefused,*'
            $e.Exception.Message | Should -Match 'AllowPlainHttp'
            (Get-OciImage $ref -AllowPlainHttp -ErrorAction Stop).Digest.ToString() | Should -Be $PushApp.Digest
            @(Get-FaultProxyLog $px).Count | Should -BeGreaterThan 0
            Stop-TestServer $px
        }
    }
}

Describe 'The cache' {
    BeforeAll {
        $script:Counter = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault none)
        $script:CountedRef = "$($Counter.Url)/team/app:1.0"
        $script:CountCache = Use-FreshCache
        $script:First = Get-OciImage $CountedRef -ErrorAction Stop
        $script:FirstLog = @(Get-FaultProxyLog $Counter)
        $script:Expected = @($App.ConfigDigest) + $App.LayerDigests
    }

    It 'the first pull downloads each blob once' {
        foreach ($d in $Expected) {
            @($FirstLog | Where-Object { $_.Method -eq 'GET' -and $_.Digest -eq $d }).Count | Should -Be 1 -Because "blob $d"
        }
    }

    It 'unpacks each layer while pulling, so that the expansion reads no layer again' {
        $env:INITRAMFSPS_CACHE = $CountCache
        foreach ($diff in $App.DiffIds) {
            $hex = $diff.Substring(7)
            Get-FileSha256 (Join-Path $CountCache "blobs/sha256/$hex") | Should -Be $diff
            Test-Path (Join-Path $CountCache "index/sha256/$hex") | Should -BeTrue -Because "the pull indexed layer $diff"
        }
        $rchar = { [long]((@(Get-Content /proc/self/io) -match '^rchar:')[0] -replace '\D', '') }
        $layerBytes = ($App.DiffIds | ForEach-Object { (Get-Item (Join-Path $CountCache "blobs/sha256/$($_.Substring(7))")).Length } | Measure-Object -Sum).Sum
        $layerBytes | Should -BeGreaterThan 200KB
        $before = & $rchar
        $rootfs = $First | Expand-OciLayers
        ((& $rchar) - $before) | Should -BeLessThan ($layerBytes / 4) -Because "the layers ($layerBytes bytes) were read while pulling, not again"
        $fromLayout = Get-OciImage $AppLayoutRef | Expand-OciLayers
        ($rootfs.GetEntries() | ForEach-Object ToString) | Should -Be ($fromLayout.GetEntries() | ForEach-Object ToString)
    }

    It 'a second pull re-resolves the tag and downloads no blob' {
        $env:INITRAMFSPS_CACHE = $CountCache
        Reset-FaultProxy $Counter
        $again = Get-OciImage $CountedRef -ErrorAction Stop
        $again.Digest.ToString() | Should -Be $First.Digest.ToString()
        $log = @(Get-FaultProxyLog $Counter)
        @($log | Where-Object { $_.Kind -eq 'Blob' -and $_.Method -eq 'GET' }) | Should -BeNullOrEmpty
        @($log | Where-Object { $_.Kind -eq 'Manifest' }).Count | Should -BeGreaterThan 0
    }

    It '-Offline uses only the cache: no request at all' {
        $env:INITRAMFSPS_CACHE = $CountCache
        Reset-FaultProxy $Counter
        $off = Get-OciImage $CountedRef -Offline -ErrorAction Stop
        $off.Digest.ToString() | Should -Be $PushApp.Digest
        Get-EntrySummary ($off | Expand-OciLayers) | Should -Be (Get-EntrySummary ($First | Expand-OciLayers))
        @(Get-FaultProxyLog $Counter) | Should -BeNullOrEmpty
    }

    It '-Offline with an image not in the cache: NotInCache, and no request' {
        $null = Use-FreshCache
        Reset-FaultProxy $Counter
        $e = Get-PullError { Get-OciImage $CountedRef -Offline }
        $e.FullyQualifiedErrorId | Should -BeLike 'NotInCache,*'
        @(Get-FaultProxyLog $Counter) | Should -BeNullOrEmpty
    }

    It 'Get-OciCache lists one object per blob; -Verify finds a damaged one' {
        $env:INITRAMFSPS_CACHE = $CountCache
        $list = @(Get-OciCache)
        $digests = @($list | ForEach-Object { "$($_.Digest)" })
        foreach ($d in $Expected) { $digests | Should -Contain $d }
        $digests.Count | Should -Be @($digests | Select-Object -Unique).Count
        foreach ($c in $list) {
            $c.Path | Should -Exist
            $c.Size | Should -Be (Get-Item -LiteralPath $c.Path).Length
        }
        @(Get-OciCache -Verify | Where-Object { -not $_.Valid }) | Should -BeNullOrEmpty

        # damage one layer's file (same length)
        $victim = $App.LayerDigests[2]
        $f = Get-BlobFile $victim
        $bytes = [IO.File]::ReadAllBytes($f); $bytes[[int]($bytes.Length / 2)] = $bytes[[int]($bytes.Length / 2)] -bxor 0xFF
        [IO.File]::WriteAllBytes($f, $bytes)
        $bad = @(Get-OciCache -Verify | Where-Object { -not $_.Valid })
        $bad.Count | Should -Be 1
        "$($bad[0].Digest)" | Should -Be $victim
    }

    It 'Clear-OciCache -Digest removes that blob only; -WhatIf removes nothing; without -Digest it removes all' {
        $env:INITRAMFSPS_CACHE = $CountCache
        $victim = $App.LayerDigests[2]
        Clear-OciCache -Digest $victim -WhatIf
        Get-BlobFile $victim | Should -Exist
        Clear-OciCache -Digest $victim -Confirm:$false
        Get-BlobFile $victim | Should -Not -Exist
        Get-BlobFile $App.LayerDigests[0] | Should -Exist
        @(Get-OciCache | ForEach-Object { "$($_.Digest)" }) | Should -Not -Contain $victim
        Clear-OciCache -Confirm:$false
        @(Get-OciCache) | Should -BeNullOrEmpty
        @(Get-ChildItem (Join-Path $CountCache 'blobs') -Recurse -File -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty
    }

    It 'downloads at most -MaxParallelDownloads blobs at once (<N>)' -ForEach @(
        @{ N = 1; Min = 1 }
        @{ N = 3; Min = 2 }
    ) {
        $null = Use-FreshCache
        $slow = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault slow -SlowRate 1MB)
        $img = Get-OciImage "$($slow.Url)/team/many:1.0" -MaxParallelDownloads $N -ErrorAction Stop
        $img.Layers.Count | Should -Be 5
        $gets = @(Get-FaultProxyLog $slow -Blob | Where-Object { $_.Method -eq 'GET' -and $_.Digest -in $Many.LayerDigests })
        $gets.Count | Should -Be 5
        $max = Get-MaxConcurrency $gets
        $max | Should -BeLessOrEqual $N
        $max | Should -BeGreaterOrEqual $Min
        Stop-TestServer $slow
    }

    It 'four processes pulling the same image into one cache all succeed, and each blob is downloaded once' {
        $cache = Use-FreshCache
        $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault slow -SlowRate 2MB)
        $ref = "$($px.Url)/team/big:1.0"
        $script = @"
`$ErrorActionPreference = 'Stop'
try {
    Import-Module '$($ModulePath.Replace("'", "''"))'
    `$img = Get-OciImage '$ref'
    [Console]::Out.WriteLine('DIGEST=' + `$img.Digest.ToString())
    exit 0
}
catch { [Console]::Error.WriteLine(`$_.ToString()); exit 1 }
"@
        $procs = @(1..4 | ForEach-Object { Start-PwshProcess -Command $script -Directory $Work -Environment @{ INITRAMFSPS_CACHE = $cache } })
        try {
            $deadline = [DateTime]::UtcNow.AddSeconds(120)
            foreach ($p in $procs) {
                $left = [Math]::Max(0, [int]($deadline - [DateTime]::UtcNow).TotalMilliseconds)
                if (-not $p.Process.WaitForExit($left)) { $p.Process.Kill($true) }
            }
            foreach ($p in $procs) {
                $p.Process.WaitForExit()
                $err = Get-Content -Raw -LiteralPath $p.StdErrPath -ErrorAction SilentlyContinue
                $p.Process.ExitCode | Should -Be 0 -Because "a pulling process failed: $err"
                (Get-Content -Raw -LiteralPath $p.StdOutPath) | Should -Match ([regex]::Escape("DIGEST=$($PushBig.Digest)"))
            }
        }
        finally { foreach ($p in $procs) { if (-not $p.Process.HasExited) { $p.Process.Kill($true) }; $p.Process.Dispose() } }

        $log = @(Get-FaultProxyLog $px -Blob | Where-Object Method -eq 'GET')
        foreach ($d in @($Big.ConfigDigest) + $Big.LayerDigests) {
            @($log | Where-Object Digest -eq $d).Count | Should -Be 1 -Because "four processes share one cache, so blob $d is downloaded once"
        }
        # the cache holds exactly the image's blobs (and maybe its manifest) and each layer unpacked
        # under its diff_id (by whichever process downloaded it), each valid
        $files = @(Get-ChildItem (Join-Path $cache 'blobs/sha256') -File | ForEach-Object { "sha256:$($_.Name)" })
        foreach ($d in @($Big.ConfigDigest) + $Big.LayerDigests + $Big.DiffIds) { $files | Should -Contain $d }
        @($files | Where-Object { $_ -notin (@($Big.ConfigDigest, $PushBig.Digest) + $Big.LayerDigests + $Big.DiffIds) }) | Should -BeNullOrEmpty
        foreach ($f in Get-ChildItem (Join-Path $cache 'blobs/sha256') -File) { Get-FileSha256 $f.FullName | Should -Be "sha256:$($f.Name)" }
        @(Get-ChildItem (Join-Path $cache 'tmp') -Recurse -File -Force -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty
        Stop-TestServer $px
    }
}

Describe 'A layer that expands far past its size' {
    BeforeAll {
        # 80 MiB of zeros: the gzip layer is about 80 KB, a thousand times smaller.
        $zeroTar = New-TestTar -Entry @(@{ Name = 'init'; Mode = '0755'; Data = "#!/bin/sh`n" }, @{ Name = 'zeros.bin'; Data = [byte[]]::new(80MB) })
        $script:Zeros = New-TestOciLayout -Path (Join-Path $Work 'zeros') -Tag zeros -Layer @(, $zeroTar)
        $script:PushZeros = Push-TestImage -Layout $Zeros.Path -Tag zeros -Registry $Registry.Url -Repository team/zeros -DestinationTag '1.0'
        $script:ZerosCache = Use-FreshCache
        $script:ZerosVerbose = @(Get-OciImage $PushZeros.Reference -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] })
    }

    It 'is not unpacked while pulling (past 20 times its size), and says so' {
        $hex = $Zeros.DiffIds[0].Substring(7)
        Test-Path (Join-Path $ZerosCache "blobs/sha256/$hex") | Should -BeFalse
        Test-Path (Join-Path $ZerosCache "index/sha256/$hex") | Should -BeFalse
        @(Get-ChildItem (Join-Path $ZerosCache 'tmp') -File -Force -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty
        ($ZerosVerbose.Message -join "`n") | Should -Match 'not unpacked while pulling \(it expands past \d+ bytes\); Expand-OciLayers will unpack it'
    }

    It 'is then refused by Expand-OciLayers -MaxLayerSize, and expanded within the default limit' {
        $env:INITRAMFSPS_CACHE = $ZerosCache
        $err = $null
        $r = Get-OciImage $PushZeros.Reference -Offline | Expand-OciLayers -MaxLayerSize 16MB -ErrorVariable err -ErrorAction SilentlyContinue
        $r | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'LayerTooLarge,*'
        (Get-OciImage $PushZeros.Reference -Offline | Expand-OciLayers).GetEntry('/zeros.bin').Size | Should -Be 80MB
        Get-FileSha256 (Get-BlobFile $Zeros.DiffIds[0]) | Should -Be $Zeros.DiffIds[0]
    }
}

Describe 'Basic auth (htpasswd)' {
    BeforeAll {
        $script:PrivRef = "$($BasicRegistry.Url)/priv/app:1.0"
        $script:Host_ = $BasicRegistry.Url
    }
    BeforeEach {
        $script:CredEnv = Reset-CredentialEnvironment
        $null = Use-FreshCache
        Set-Content -LiteralPath $HelperLog -Value $null -ErrorAction SilentlyContinue
    }

    It 'pulls with -Credential' {
        $img = Get-OciImage $PrivRef -Credential (New-TestCredential $BasicUser $BasicPassword) -ErrorAction Stop
        $img.Digest.ToString() | Should -Be $PushPrivate.Digest
        Get-BlobFile $App.LayerDigests[0] | Should -Exist
    }

    It 'refuses a wrong -Credential: RegistryCredentialsRefused' {
        $e = Get-PullError { Get-OciImage $PrivRef -Credential (New-TestCredential $BasicUser 'wrong-password') }
        $e.FullyQualifiedErrorId | Should -BeLike 'RegistryCredentialsRefused,*'
        "$($e.CategoryInfo.Category)" | Should -BeIn 'AuthenticationError', 'SecurityError'
        $e.Exception.Message | Should -Match ([regex]::Escape($BasicRegistry.Url))
    }

    It 'fails without any credentials, with an authentication error' {
        $e = Get-PullError { Get-OciImage $PrivRef }
        $e.FullyQualifiedErrorId | Should -BeLike 'RegistryCredentials*,*'
        "$($e.CategoryInfo.Category)" | Should -BeIn 'AuthenticationError', 'SecurityError'
    }

    It 'reads "auths" from <Where>' -ForEach @(
        @{ Where = '$DOCKER_CONFIG/config.json' }
        @{ Where = '~/.docker/config.json' }
        @{ Where = '$REGISTRY_AUTH_FILE' }
        @{ Where = '$XDG_RUNTIME_DIR/containers/auth.json' }
    ) {
        $file = switch ($Where) {
            '$DOCKER_CONFIG/config.json' { $env:DOCKER_CONFIG = Join-Path $CredEnv.Root 'dockercfg'; Join-Path $env:DOCKER_CONFIG 'config.json' }
            '~/.docker/config.json' { Join-Path $CredEnv.Home '.docker/config.json' }
            '$REGISTRY_AUTH_FILE' { $env:REGISTRY_AUTH_FILE = Join-Path $CredEnv.Root 'auth.json'; $env:REGISTRY_AUTH_FILE }
            '$XDG_RUNTIME_DIR/containers/auth.json' { Join-Path $CredEnv.Xdg 'containers/auth.json' }
        }
        $null = New-TestAuthConfig -Path $file -Auths @{ $Host_ = "${BasicUser}:$BasicPassword" }
        (Get-OciImage $PrivRef -ErrorAction Stop).Digest.ToString() | Should -Be $PushPrivate.Digest
    }

    It 'a wrong password in config.json: RegistryCredentialsRefused' {
        $null = New-TestAuthConfig -Path (Join-Path $CredEnv.Home '.docker/config.json') -Auths @{ $Host_ = "${BasicUser}:not-it" }
        $e = Get-PullError { Get-OciImage $PrivRef }
        $e.FullyQualifiedErrorId | Should -BeLike 'RegistryCredentialsRefused,*'
    }

    It 'credentials for another registry are not used' {
        $null = New-TestAuthConfig -Path (Join-Path $CredEnv.Home '.docker/config.json') -Auths @{ '127.0.0.1:1' = "${BasicUser}:$BasicPassword" }
        $e = Get-PullError { Get-OciImage $PrivRef }
        $e.FullyQualifiedErrorId | Should -BeLike 'RegistryCredentials*,*'
    }

    It '-Credential comes before the auth files' {
        $null = New-TestAuthConfig -Path (Join-Path $CredEnv.Home '.docker/config.json') -Auths @{ $Host_ = "${BasicUser}:not-it" }
        $env:REGISTRY_AUTH_FILE = New-TestAuthConfig -Path (Join-Path $CredEnv.Root 'auth.json') -Auths @{ $Host_ = "${BasicUser}:not-it-either" }
        $img = Get-OciImage $PrivRef -Credential (New-TestCredential $BasicUser $BasicPassword) -ErrorAction Stop
        $img.Digest.ToString() | Should -Be $PushPrivate.Digest
    }

    It '$REGISTRY_AUTH_FILE comes before ~/.docker/config.json' {
        $null = New-TestAuthConfig -Path (Join-Path $CredEnv.Home '.docker/config.json') -Auths @{ $Host_ = "${BasicUser}:not-it" }
        $env:REGISTRY_AUTH_FILE = New-TestAuthConfig -Path (Join-Path $CredEnv.Root 'auth.json') -Auths @{ $Host_ = "${BasicUser}:$BasicPassword" }
        (Get-OciImage $PrivRef -ErrorAction Stop).Digest.ToString() | Should -Be $PushPrivate.Digest
    }

    It 'asks the credential helper named in <Key>' -ForEach @(
        @{ Key = 'credHelpers' }
        @{ Key = 'credsStore' }
    ) {
        $cfg = Join-Path $CredEnv.Home '.docker/config.json'
        if ($Key -eq 'credHelpers') { $null = New-TestAuthConfig -Path $cfg -CredHelpers @{ $Host_ = 'test' } }
        else { $null = New-TestAuthConfig -Path $cfg -CredsStore 'test' }
        (Get-OciImage $PrivRef -ErrorAction Stop).Digest.ToString() | Should -Be $PushPrivate.Digest
        $calls = @(Get-Content -LiteralPath $HelperLog | Where-Object { $_ })
        $calls | Should -Contain "get $Host_"
    }
}

Describe 'Token auth (Bearer)' {
    BeforeAll {
        $script:TokRef = "$($TokenRegistry.Url)/pub/many:1.0"
        $script:BlobCount = 1 + $Many.LayerDigests.Count
    }
    BeforeEach {
        $null = Reset-CredentialEnvironment
        $null = Use-FreshCache
        Reset-TokenServerStats $TokenServer
    }

    It 'pulls anonymously with a pull-only token' {
        $img = Get-OciImage $TokRef -ErrorAction Stop
        $img.Digest.ToString() | Should -Be $PushToken.Digest
        foreach ($d in $Many.LayerDigests) { Get-FileSha256 (Get-BlobFile $d) | Should -Be $d }
        $stats = Get-TokenServerStats $TokenServer
        $stats.ByScope.Keys | Should -Contain 'repository:pub/many:pull'
        foreach ($ev in $stats.Events) {
            $ev.status | Should -Be 200
            $ev.authenticated | Should -BeFalse
            foreach ($s in $ev.scopes) { $s | Should -Not -Match 'push' -Because 'a pull asks for pull only' }
        }
    }

    It 'fetches one token per scope for the whole pull, not one per blob' {
        $null = Get-OciImage $TokRef -ErrorAction Stop
        $stats = Get-TokenServerStats $TokenServer
        $BlobCount | Should -BeGreaterThan 3
        foreach ($k in $stats.ByScope.Keys) { $stats.ByScope[$k] | Should -Be 1 -Because "scope '$k' needs one token" }
        $stats.Requests | Should -BeLessOrEqual $stats.ByScope.Count
    }

    It 'authenticates at the token service with -Credential' {
        $img = Get-OciImage $TokRef -Credential (New-TestCredential $TokenUser $TokenPassword) -ErrorAction Stop
        $img.Digest.ToString() | Should -Be $PushToken.Digest
        $stats = Get-TokenServerStats $TokenServer
        @($stats.Events | Where-Object { $_.authenticated -and $_.user -eq $TokenUser }).Count | Should -BeGreaterThan 0
    }

    It 'authenticates at the token service with credentials from config.json' {
        $null = New-TestAuthConfig -Path (Join-Path $env:HOME '.docker/config.json') -Auths @{ $TokenRegistry.Url = "${TokenUser}:$TokenPassword" }
        (Get-OciImage $TokRef -ErrorAction Stop).Digest.ToString() | Should -Be $PushToken.Digest
        @((Get-TokenServerStats $TokenServer).Events | Where-Object { $_.authenticated -and $_.user -eq $TokenUser }).Count | Should -BeGreaterThan 0
    }

    It 'wrong credentials refused by the token service: RegistryCredentialsRefused' {
        $e = Get-PullError { Get-OciImage $TokRef -Credential (New-TestCredential $TokenUser 'wrong-password') }
        $e.FullyQualifiedErrorId | Should -BeLike 'RegistryCredentialsRefused,*'
        "$($e.CategoryInfo.Category)" | Should -BeIn 'AuthenticationError', 'SecurityError'
    }
}

Describe 'Network faults' {
    BeforeEach { $script:FaultCache = Use-FreshCache }

    It 'a 429 with Retry-After: waits, retries, succeeds' {
        $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault '429-once' -RetryAfter 2)
        $img = Get-OciImage "$($px.Url)/team/app:1.0" -ErrorAction Stop
        $img.Digest.ToString() | Should -Be $PushApp.Digest
        $log = @(Get-FaultProxyLog $px)
        $limited = @($log | Where-Object Status -eq 429)
        $limited.Count | Should -Be 1
        $retry = @($log | Where-Object { $_.Path -eq $limited[0].Path -and $_.Id -gt $limited[0].Id -and $_.Method -eq $limited[0].Method } | Sort-Object T0)[0]
        $retry | Should -Not -BeNullOrEmpty
        $retry.Status | Should -BeIn 200, 206
        ($retry.T0 - $limited[0].T1) | Should -BeGreaterOrEqual 1.9 -Because 'the client waits the Retry-After: 2 seconds'
        foreach ($d in @($App.ConfigDigest) + $App.LayerDigests) { Get-FileSha256 (Get-BlobFile $d) | Should -Be $d }
        Stop-TestServer $px
    }

    It 'two 503 answers, then success' {
        $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault '503-twice' -RetryAfter 1)
        $img = Get-OciImage "$($px.Url)/team/app:1.0" -ErrorAction Stop
        $img.Digest.ToString() | Should -Be $PushApp.Digest
        $log = @(Get-FaultProxyLog $px)
        $failed = @($log | Where-Object Status -eq 503)
        $failed.Count | Should -Be 2
        foreach ($f in $failed) {
            @($log | Where-Object { $_.Path -eq $f.Path -and $_.Id -gt $f.Id -and $_.Status -in 200, 206 }).Count | Should -BeGreaterThan 0 -Because "$($f.Path) was retried"
        }
        foreach ($d in @($App.ConfigDigest) + $App.LayerDigests) { Get-FileSha256 (Get-BlobFile $d) | Should -Be $d }
        Stop-TestServer $px
    }

    It 'a connection dropped halfway through a blob (<Fault>): resumed with a Range request, right bytes' -ForEach @(
        @{ Fault = 'drop-half' }
        @{ Fault = 'reset-half' }
    ) {
        $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault $Fault)
        $img = Get-OciImage "$($px.Url)/team/big:1.0" -ErrorAction Stop
        $img.Digest.ToString() | Should -Be $PushBig.Digest
        $bigLayer = $Big.LayerDigests[0]
        $gets = @(Get-FaultProxyLog $px -Blob | Where-Object { $_.Method -eq 'GET' -and $_.Digest -eq $bigLayer } | Sort-Object Id)
        $gets.Count | Should -BeGreaterOrEqual 2
        $gets[0].Fault | Should -Be $Fault
        $gets[0].Complete | Should -BeFalse
        $resumes = @($gets | Select-Object -Skip 1 | Where-Object { $_.Range -match '^bytes=(\d+)-' -and [long]$Matches[1] -gt 0 })
        $resumes.Count | Should -BeGreaterThan 0 -Because 'the download goes on from where it stopped (Range: bytes=N-)'
        $resumes[0].Status | Should -Be 206
        [long]($resumes[0].Range -replace '^bytes=(\d+)-.*$', '$1') | Should -BeLessOrEqual $gets[0].Bytes
        Get-FileSha256 (Get-BlobFile $bigLayer) | Should -Be $bigLayer
        # The layer was unpacked while it downloaded, across the resume, to the right tar.
        Get-FileSha256 (Get-BlobFile $Big.DiffIds[0]) | Should -Be $Big.DiffIds[0]
        @(Get-OciCache -Verify | Where-Object { -not $_.Valid }) | Should -BeNullOrEmpty
        ($img | Expand-OciLayers).GetEntry('/big.bin').Size | Should -Be 3MB
        Stop-TestServer $px
    }

    It 'a flipped byte: DigestMismatch, and nothing of that blob in the cache' {
        $layer = $App.LayerDigests[2]
        $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault 'flip-byte' -Match ([regex]::Escape("/blobs/$layer") + '$'))
        $e = Get-PullError { Get-OciImage "$($px.Url)/team/app:1.0" }
        $e.FullyQualifiedErrorId | Should -BeLike 'DigestMismatch,*'
        @(Get-FaultProxyLog $px -Blob | Where-Object { $_.Digest -eq $layer -and $_.Fault -like 'flip-byte*' }).Count | Should -BeGreaterThan 0
        $hex = $layer.Substring(7)
        @(Get-ChildItem (Join-Path $FaultCache 'blobs/sha256') -File -ErrorAction SilentlyContinue | Where-Object Name -eq $hex) | Should -BeNullOrEmpty
        @(Get-OciCache | Where-Object { "$($_.Digest)" -eq $layer }) | Should -BeNullOrEmpty
        # Nor was it unpacked: the bytes the unpacker saw were never verified.
        $diffHex = $App.DiffIds[2].Substring(7)
        Test-Path (Join-Path $FaultCache "blobs/sha256/$diffHex") | Should -BeFalse
        Test-Path (Join-Path $FaultCache "index/sha256/$diffHex") | Should -BeFalse
        @(Get-ChildItem (Join-Path $FaultCache 'tmp') -File -Force -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty
        Stop-TestServer $px
        # the same cache then pulls the image right from the registry itself
        (Get-OciImage "$($Registry.Url)/team/app:1.0" -ErrorAction Stop).Digest.ToString() | Should -Be $PushApp.Digest
        Get-FileSha256 (Get-BlobFile $layer) | Should -Be $layer
    }

    It 'a registry that keeps answering 503: RegistryUnavailable once the retries run out' {
        $px = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault '503-always' -Match '^/v2/' -RetryAfter 0)
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $e = Get-PullError { Get-OciImage "$($px.Url)/team/app:1.0" }
        $sw.Stop()
        $e.FullyQualifiedErrorId | Should -BeLike 'RegistryUnavailable,*'
        @(Get-FaultProxyLog $px | Where-Object Status -eq 503).Count | Should -BeGreaterThan 1 -Because 'it retried'
        $sw.Elapsed.TotalSeconds | Should -BeLessThan 60
        Stop-TestServer $px
    }
}

Describe 'A pulled image exported, against skopeo and umoci' -Skip:(-not $IsRoot) {
    It 'extracts (GNU cpio) to the same tree as `skopeo copy` + `umoci unpack` of <Repo>' -ForEach @(
        @{ Repo = 'team/app' }
        @{ Repo = 'team/app-docker' }
    ) {
        $null = Use-FreshCache
        $ref = "$($Registry.Url)/${Repo}:1.0"
        $dir = New-TestDirectory -Parent $Work -Prefix 'umoci'
        $archive = Join-Path $dir 'x.cpio'
        $null = Get-OciImage $ref -ErrorAction Stop | Set-InitramfsInit -Content "#!/bin/sh`n" | Export-Initramfs $archive -NoDefaultEntries
        $ours = Join-Path $dir 'ours'
        Expand-TestCpioArchive -Path $archive -Destination $ours

        $layout = Join-Path $dir 'layout'
        $said = & skopeo copy --src-tls-verify=false "docker://$ref" "oci:${layout}:t" 2>&1
        $LASTEXITCODE | Should -Be 0 -Because "skopeo copy said: $($said -join "`n")"
        $said = & umoci unpack --image "${layout}:t" (Join-Path $dir 'bundle') 2>&1
        $LASTEXITCODE | Should -Be 0 -Because "umoci unpack said: $($said -join "`n")"

        $refTree = @(Get-TreeListing (Join-Path $dir 'bundle/rootfs'))
        $ourTree = @(Get-TreeListing $ours)
        $refTree.Count | Should -BeGreaterThan 15
        # /init: the image's, replaced by Set-InitramfsInit
        ($ourTree | Where-Object Name -eq 'init').DataSha256 | Should -Be ((Get-FileHash -InputStream ([IO.MemoryStream]::new([Text.Encoding]::UTF8.GetBytes("#!/bin/sh`n")))).Hash.ToLowerInvariant())

        $props = 'Type', 'Perm', 'Uid', 'Gid', 'Size', 'LinkTarget', 'RDevMajor', 'RDevMinor', 'DataSha256', 'NLink', 'MTime'
        $refByName = @{}; foreach ($e in $refTree) { if ($e.Name -ne 'init') { $refByName[$e.Name] = $e } }
        $ourByName = @{}; foreach ($e in $ourTree) { if ($e.Name -ne 'init') { $ourByName[$e.Name] = $e } }
        $diff = [Collections.Generic.List[string]]::new()
        foreach ($n in $refByName.Keys) { if (-not $ourByName.ContainsKey($n)) { $diff.Add("${n}: only in umoci's tree") } }
        foreach ($n in $ourByName.Keys) { if (-not $refByName.ContainsKey($n)) { $diff.Add("${n}: only in ours") } }
        foreach ($n in $refByName.Keys) {
            if (-not $ourByName.ContainsKey($n)) { continue }
            foreach ($p in $props) {
                # GNU cpio -m cannot keep directory times (creating children bumps them) nor symlink times
                if ($p -eq 'MTime' -and $refByName[$n].Type -in 'Dir', 'Symlink') { continue }
                if ("$($refByName[$n].$p)" -cne "$($ourByName[$n].$p)") { $diff.Add("${n}: $p umoci=<$($refByName[$n].$p)> ours=<$($ourByName[$n].$p)>") }
            }
        }
        $diff -join "`n" | Should -Be '' -Because ("the trees must match entry by entry:`n" + ($diff -join "`n"))
        # the comparison covers what it should
        $refByName['usr/bin/su'].Perm | Should -Be ([Convert]::ToInt32('4755', 8))
        $refByName['dev/null'].Type | Should -Be 'CharDevice'
        $refByName['etc/passwd-'].NLink | Should -Be 2
        $refByName.ContainsKey('etc/hostname') | Should -BeFalse
        $refByName.ContainsKey('srv/data/old.txt') | Should -BeFalse
    }
}

Describe 'Secrets stay out of output' {
    BeforeAll {
        # The strings that must never show: the passwords, the basic header value, issued tokens.
        function script:Get-Leaks([object[]] $Records, [string[]] $Secrets) {
            $texts = foreach ($r in $Records) {
                if ($null -eq $r) { continue }
                if ($r -is [System.Management.Automation.ErrorRecord]) {
                    "$r"; "$($r.Exception)"; "$($r.Exception.InnerException)"; "$($r.TargetObject)"; "$($r.ErrorDetails)"; "$($r.CategoryInfo)"
                }
                elseif ($r -is [System.Management.Automation.InformationalRecord]) { $r.Message }
                elseif ($r -is [System.Management.Automation.InformationRecord]) { "$($r.MessageData)" }
                else { ($r | Format-List * -Force | Out-String -Width 4096); "$r" }
            }
            $all = $texts -join "`n"
            @($Secrets | Where-Object { $_ -and $all.Contains($_) })
        }
        $script:BasicSecrets = @($BasicPassword, [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("${BasicUser}:$BasicPassword")))
    }
    BeforeEach {
        $script:SecretEnv = Reset-CredentialEnvironment
        $null = Use-FreshCache
    }

    It 'a basic-auth pull with -Credential -Verbose shows no password in any stream or in the object' {
        $records = @(Get-OciImage "$($BasicRegistry.Url)/priv/app:1.0" -Credential (New-TestCredential $BasicUser $BasicPassword) -Verbose *>&1)
        @($records | Where-Object { $_ -is [InitramfsPS.Images.OciImage] }).Count | Should -Be 1
        @($records | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Count | Should -BeGreaterThan 0
        Get-Leaks $records $BasicSecrets | Should -BeNullOrEmpty
    }

    It 'a refused password is not in the error record' {
        $bad = 'Wr0ng-But-Secret-pw'
        $records = @(try { Get-OciImage "$($BasicRegistry.Url)/priv/app:1.0" -Credential (New-TestCredential $BasicUser $bad) -Verbose -ErrorAction Continue *>&1 } catch { $_ })
        $errors = @($records | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $errors.Count | Should -BeGreaterThan 0
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'RegistryCredentialsRefused,*'
        Get-Leaks $records @($bad, [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("${BasicUser}:$bad"))) | Should -BeNullOrEmpty
    }

    It 'credentials from config.json do not show with -Verbose' {
        $null = New-TestAuthConfig -Path (Join-Path $SecretEnv.Home '.docker/config.json') -Auths @{ $BasicRegistry.Url = "${BasicUser}:$BasicPassword" }
        $records = @(Get-OciImage "$($BasicRegistry.Url)/priv/app:1.0" -Verbose *>&1)
        @($records | Where-Object { $_ -is [InitramfsPS.Images.OciImage] }).Count | Should -Be 1
        Get-Leaks $records $BasicSecrets | Should -BeNullOrEmpty
    }

    It 'a token pull with -Credential -Verbose shows neither the password nor any token' {
        Reset-TokenServerStats $TokenServer
        $records = @(Get-OciImage "$($TokenRegistry.Url)/pub/many:1.0" -Credential (New-TestCredential $TokenUser $TokenPassword) -Verbose *>&1)
        @($records | Where-Object { $_ -is [InitramfsPS.Images.OciImage] }).Count | Should -Be 1
        $tokens = @((Get-TokenServerStats $TokenServer).Tokens)
        $tokens.Count | Should -BeGreaterThan 0
        # the whole token, and its claims and signature parts (the header part is the same for every token)
        $secrets = @($TokenPassword) + $tokens + @($tokens | ForEach-Object { ($_ -split '\.')[1, 2] })
        Get-Leaks $records $secrets | Should -BeNullOrEmpty
    }

    It 'with -Verbose -Debug and a transcript on, basic and token pulls leave no secret in any stream, error, object, cache file or transcript' {
        Reset-TokenServerStats $TokenServer
        $cache = $env:INITRAMFSPS_CACHE
        $transcript = Join-Path $Work "transcript-$([guid]::NewGuid().ToString('N')).txt"
        $badPassword = 'Wr0ng-Transcript-pw'
        $Error.Clear()
        $records = [System.Collections.Generic.List[object]]::new()
        $null = Start-Transcript -LiteralPath $transcript -IncludeInvocationHeader
        try {
            $DebugPreference = 'Continue'
            foreach ($r in @(Get-OciImage "$($BasicRegistry.Url)/priv/app:1.0" -Credential (New-TestCredential $BasicUser $BasicPassword) -Verbose -Debug *>&1)) { $records.Add($r) }
            foreach ($r in @(Get-OciImage "$($TokenRegistry.Url)/pub/many:1.0" -Credential (New-TestCredential $TokenUser $TokenPassword) -Verbose -Debug *>&1)) { $records.Add($r) }
            foreach ($r in @(Get-OciImage "$($BasicRegistry.Url)/priv/app:1.0" -Credential (New-TestCredential $BasicUser $badPassword) -Verbose -Debug -ErrorAction Continue *>&1)) { $records.Add($r) }
            # everything once more through the host, so the transcript sees every stream and the objects
            $records | Out-Host
            $records | Where-Object { $_ -is [InitramfsPS.Images.OciImage] } | Format-List * -Force | Out-Host
            Get-OciImage "$($BasicRegistry.Url)/priv/app:1.0" -Credential (New-TestCredential $BasicUser $BasicPassword) -Verbose -Debug | Out-Host
        }
        finally { $null = Stop-Transcript; $DebugPreference = 'SilentlyContinue' }

        $images = @($records | Where-Object { $_ -is [InitramfsPS.Images.OciImage] })
        $images.Count | Should -Be 2
        @($records | Where-Object { $_ -is [System.Management.Automation.DebugRecord] -or $_ -is [System.Management.Automation.VerboseRecord] }).Count | Should -BeGreaterThan 0
        @($records | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] }).Count | Should -BeGreaterThan 0 -Because 'the wrong password gives an error record'
        $tokens = @((Get-TokenServerStats $TokenServer).Tokens)
        $tokens.Count | Should -BeGreaterThan 0
        $secrets = @($BasicPassword, $TokenPassword, $badPassword) + $BasicSecrets + $tokens + @($tokens | ForEach-Object { ($_ -split '\.')[1, 2] }) +
            @([Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("${TokenUser}:$TokenPassword")), [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("${BasicUser}:$badPassword")))

        Get-Leaks $records $secrets | Should -BeNullOrEmpty -Because 'no stream or object holds a secret'
        Get-Leaks @($Error) $secrets | Should -BeNullOrEmpty -Because '$Error holds no secret'
        $json = $images | ConvertTo-Json -Depth 5 -WarningAction SilentlyContinue
        @($secrets | Where-Object { $json.Contains($_) }) | Should -BeNullOrEmpty -Because 'the objects hold no secret'
        $text = Get-Content -Raw -LiteralPath $transcript
        $text | Should -Match 'VERBOSE: ' -Because 'the transcript recorded the verbose stream'
        @($secrets | Where-Object { $text.Contains($_) }) | Should -BeNullOrEmpty -Because 'the transcript holds no secret'
        $files = @(Get-ChildItem -LiteralPath $cache -Recurse -File -Force)
        $files.Count | Should -BeGreaterThan 0
        foreach ($f in $files) {
            $content = [Text.Encoding]::Latin1.GetString([IO.File]::ReadAllBytes($f.FullName))
            @($secrets | Where-Object { $content.Contains($_) }) | Should -BeNullOrEmpty -Because "the cache file $($f.FullName) holds no secret"
        }
    }
}
