# Interruption and concurrency (issue 7, parts 4 and 5): an interrupted run leaves no partial
# output and a consistent cache, and the next run succeeds.
#  - `kill -9` of a pwsh process in the middle of a pull (through a slow fault proxy) at several
#    points: no blob that fails its digest, `Get-OciCache -Verify` all Valid, the next pull works;
#  - `kill -9` in the middle of an export at several points: the output path never appears (a
#    kill -9 can leave the hidden temp file `.<name>.<guid>.partial` beside it, which is never
#    taken for the output), the cache verifies, and the next export to the same path succeeds
#    and sweeps that temp file;
#  - Ctrl+C (PowerShell.Stop(), which calls StopProcessing) in the middle of a pull;
#  - eight processes exporting different variants of one cached image at once.
# Needs docker-registry and python3 (the registry helpers); each server is stopped by PID.

BeforeAll {
    $script:ModulePath = [IO.Path]::GetFullPath(($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1"))
    Import-Module $ModulePath -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/RegistryHelpers.psm1 -Force
    $script:Work = New-TestDirectory -Prefix 'initramfsps-interrupt'
    $script:Servers = [System.Collections.Generic.List[object]]::new()
    $script:SavedCache = $env:INITRAMFSPS_CACHE
    # docker-registry reads REGISTRY_* variables as configuration (REGISTRY_AUTH_FILE becomes an
    # 'auth: file' section it cannot load): none of a credentials test's may reach our registry.
    $script:SavedRegistryEnv = @(Get-ChildItem Env: | Where-Object Name -Like 'REGISTRY_*')
    if ($SavedRegistryEnv) { Write-Host "Interrupt.Tests: clearing $($SavedRegistryEnv.Name -join ', ') for docker-registry" }
    foreach ($v in $SavedRegistryEnv) { Remove-Item -LiteralPath "Env:$($v.Name)" }

    function script:New-RandomBytes([int] $Length, [int] $Seed) { $b = [byte[]]::new($Length); [Random]::new($Seed).NextBytes($b); , $b }
    function script:Use-FreshCache { $env:INITRAMFSPS_CACHE = New-TestDirectory -Parent $Work -Prefix 'cache'; $env:INITRAMFSPS_CACHE }

    # The cache is consistent: every blob hashes to its name, and nothing half-written is a blob.
    function script:Assert-CacheConsistent([string] $Cache) {
        $env:INITRAMFSPS_CACHE = $Cache
        $blobs = @(Get-OciCache -Verify)
        @($blobs | Where-Object { $_.Valid -ne $true }) | Should -BeNullOrEmpty -Because 'every blob in the cache hashes to its digest'
        @(Get-ChildItem (Join-Path $Cache 'blobs') -Recurse -File -Force -ErrorAction SilentlyContinue | Where-Object Name -Like '*.partial') |
            Should -BeNullOrEmpty -Because 'a temp file is never committed as a blob'
        $blobs
    }

    function script:Wait-Until([scriptblock] $Condition, [double] $Seconds = 60) {
        $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
        while (-not (& $Condition)) {
            if ([DateTime]::UtcNow -gt $deadline) { return $false }
            Start-Sleep -Milliseconds 20
        }
        $true
    }

    function script:Stop-Hard($Child) {
        if (-not $Child.Process.HasExited) { & kill -9 $Child.Process.Id; $Child.Process.WaitForExit() }
        $Child.Process.Dispose()
    }

    function script:Start-Child([string] $Body, [string] $Cache) {
        $script = @"
`$ErrorActionPreference = 'Stop'
try {
    Import-Module '$($ModulePath.Replace("'", "''"))'
$Body
    exit 0
}
catch { [Console]::Error.WriteLine(`$_.ToString()); exit 1 }
"@
        Start-PwshProcess -Command $script -Directory $Work -Environment @{ INITRAMFSPS_CACHE = $Cache }
    }

    # A two-layer image of 5 MB of incompressible data.
    $script:Img = New-TestOciLayout -Path (Join-Path $Work 'img') -Tag img -Layer @(
        (New-TestTar -Entry @(@{ Name = 'init'; Mode = '0755'; Data = "#!/bin/sh`n" }, @{ Name = 'big.bin'; Data = (New-RandomBytes 4MB 7) })),
        (New-TestTar -Entry @(@{ Name = 'more.bin'; Data = (New-RandomBytes 1MB 8) })))
    $script:Registry = (Start-TestRegistry); $Servers.Add($Registry)
    $script:Push = Push-TestImage -Layout $Img.Path -Tag img -Registry $Registry.Url -Repository team/img -DestinationTag '1.0'
    $script:Slow = (Start-FaultProxy -Upstream $Registry.Url -Fault slow -SlowRate 1MB); $Servers.Add($Slow)
    $script:SlowRef = "$($Slow.Url)/team/img:1.0"
    $script:DirectRef = "$($Registry.Url)/team/img:1.0"
}

AfterAll {
    for ($i = $Servers.Count - 1; $i -ge 0; $i--) {
        $s = $Servers[$i]
        if ($s.PSTypeNames[0] -eq 'InitramfsPS.Test.FaultProxy') { Stop-FaultProxy $s } else { Stop-TestRegistry $s }
    }
    $env:INITRAMFSPS_CACHE = $SavedCache
    foreach ($v in $SavedRegistryEnv) { [Environment]::SetEnvironmentVariable($v.Name, $v.Value) }
    if ($Work) { Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'kill -9 in the middle of a pull' {
    It 'killed <When>: the cache verifies and the next pull succeeds' -ForEach @(
        @{ When = 'as the first blob starts'; After = 0 }
        @{ When = 'one second into the blobs'; After = 1000 }
        @{ When = 'after a layer was committed'; After = -1 }
    ) {
        $cache = Use-FreshCache
        $child = Start-Child "    `$null = Get-OciImage '$SlowRef'" $cache
        try {
            Wait-Until { @(Get-ChildItem (Join-Path $cache 'tmp') -Filter '*.partial' -Force -ErrorAction SilentlyContinue).Count -gt 0 } 60 |
                Should -BeTrue -Because "the pull must have started writing a blob: $(Get-Content -Raw $child.StdErrPath -ErrorAction SilentlyContinue)"
            if ($After -gt 0) { Start-Sleep -Milliseconds $After }
            if ($After -lt 0) {
                Wait-Until { @(Get-ChildItem (Join-Path $cache 'blobs/sha256') -File -ErrorAction SilentlyContinue | Where-Object Length -GE 1MB).Count -gt 0 } 60 |
                    Should -BeTrue
            }
            $child.Process.HasExited | Should -BeFalse -Because 'the kill must land in the middle of the pull'
        }
        finally { Stop-Hard $child }

        $null = Assert-CacheConsistent $cache
        $pulled = Get-OciImage $DirectRef -ErrorAction Stop
        $pulled.Digest.ToString() | Should -Be $Push.Digest
        $blobs = Assert-CacheConsistent $cache
        foreach ($d in @($Img.ConfigDigest) + $Img.LayerDigests) { $blobs.Digest.ForEach({ "$_" }) | Should -Contain $d }
        $r = $pulled | Expand-OciLayers -ErrorAction Stop
        $r.GetEntry('/big.bin').Size | Should -Be 4MB
    }
}

Describe 'kill -9 in the middle of an export' {
    BeforeAll {
        $script:ExportCache = Use-FreshCache
        $null = Get-OciImage $DirectRef -ErrorAction Stop
        # 160 MB that gzip -9 cannot shrink: the export takes a while
        $script:BigFile = Join-Path $Work 'payload.bin'
        $fs = [IO.File]::Create($BigFile)
        $rnd = [Random]::new(42); $buf = [byte[]]::new(4MB)
        for ($i = 0; $i -lt 40; $i++) { $rnd.NextBytes($buf); $fs.Write($buf, 0, $buf.Length) }
        $fs.Dispose()
    }

    It 'killed <When>: no output file, the cache verifies, the next export succeeds' -ForEach @(
        @{ When = 'as the temp file appears'; After = 0 }
        @{ When = '300 ms into the writing'; After = 300 }
    ) {
        $dir = New-TestDirectory -Parent $Work -Prefix 'export'
        $out = Join-Path $dir 'out.cpio.gz'
        $child = Start-Child "    `$null = Get-OciImage '$DirectRef' -Offline | Add-InitramfsFile '$BigFile' /payload.bin | Export-Initramfs '$out' -CompressionLevel 9 -Force" $ExportCache
        try {
            Wait-Until { @(Get-ChildItem $dir -Filter '.out.cpio.gz.*' -Force).Count -gt 0 } 60 |
                Should -BeTrue -Because "the export must have started writing: $(Get-Content -Raw $child.StdErrPath -ErrorAction SilentlyContinue)"
            if ($After -gt 0) { Start-Sleep -Milliseconds $After }
            $child.Process.HasExited | Should -BeFalse -Because 'the kill must land in the middle of the export'
        }
        finally { Stop-Hard $child }

        Test-Path -LiteralPath $out | Should -BeFalse -Because 'the output appears only once complete'
        @(Get-ChildItem $dir -Force | Where-Object Name -NotLike '.out.cpio.gz.*.partial') | Should -BeNullOrEmpty -Because 'only the hidden temp file may be left'
        $null = Assert-CacheConsistent $ExportCache

        $report = Get-OciImage $DirectRef -Offline | Add-InitramfsFile (Join-Path $Work 'small.txt' | ForEach-Object { Set-Content $_ 'small'; $_ }) /small.txt |
            Export-Initramfs $out -Force -WarningAction SilentlyContinue -ErrorAction Stop
        $report | Should -Not -BeNullOrEmpty
        $listing = @(Get-CpioListing $out)
        $listing.Name | Should -Contain 'small.txt'
        $listing.Name | Should -Contain 'big.bin'
        @(Get-ChildItem $dir -Force -Filter '.out.cpio.gz.*.partial') | Should -BeNullOrEmpty -Because 'the next export sweeps the temp file the killed one left'
        $null = Assert-CacheConsistent $ExportCache
    }
}

Describe 'Ctrl+C (StopProcessing) in the middle of a pull' {
    It 'stops promptly, leaves no temp file, the cache verifies, and the next pull succeeds' {
        $cache = Use-FreshCache
        $ps = [PowerShell]::Create()
        try {
            $null = $ps.AddCommand('Import-Module').AddArgument($ModulePath).AddStatement()
            $null = $ps.AddScript("`$env:INITRAMFSPS_CACHE = '$cache'").AddStatement()
            $null = $ps.AddCommand('Get-OciImage').AddArgument($SlowRef)
            $async = $ps.BeginInvoke()
            Wait-Until { @(Get-ChildItem (Join-Path $cache 'tmp') -Filter '*.partial' -Force -ErrorAction SilentlyContinue).Count -gt 0 } 60 | Should -BeTrue
            Start-Sleep -Milliseconds 300
            $ps.InvocationStateInfo.State | Should -Be 'Running'
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            try { $null = $ps.EndInvoke($async) } catch { }
            $sw.Elapsed.TotalSeconds | Should -BeLessThan 10 -Because 'Ctrl+C stops a pull promptly'
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        }
        finally { $ps.Dispose() }
        # the writers are disposed on the way out: no temp file is left
        Wait-Until { @(Get-ChildItem (Join-Path $cache 'tmp') -Force -File -ErrorAction SilentlyContinue).Count -eq 0 } 10 | Should -BeTrue -Because 'a stopped pull deletes its temp files'
        $null = Assert-CacheConsistent $cache
        (Get-OciImage $DirectRef -ErrorAction Stop).Digest.ToString() | Should -Be $Push.Digest
        $null = Assert-CacheConsistent $cache
    }
}

Describe 'Concurrency' {
    It 'eight processes exporting different variants of one cached image at once all succeed with their own payloads' {
        $cache = Use-FreshCache
        $null = Get-OciImage $DirectRef -ErrorAction Stop | Expand-OciLayers -ErrorAction Stop
        $exts = 'cpio', 'cpio.gz', 'cpio.zst'
        $jobs = foreach ($i in 1..8) {
            $payload = Join-Path $Work "payload-$i.txt"
            Set-Content -LiteralPath $payload -Value "variant $i $([guid]::NewGuid())" -NoNewline
            $out = Join-Path $Work "variant-$i.$($exts[$i % 3])"
            [pscustomobject]@{
                Out     = $out
                Sha     = (Get-FileHash -LiteralPath $payload -Algorithm SHA256).Hash.ToLowerInvariant()
                Child   = Start-Child "    `$null = Get-OciImage '$DirectRef' -Offline | Add-InitramfsFile '$payload' /etc/variant | Export-Initramfs '$out' -Force -WarningAction SilentlyContinue" $cache
            }
        }
        try {
            $deadline = [DateTime]::UtcNow.AddSeconds(120)
            foreach ($j in $jobs) {
                $left = [Math]::Max(0, [int]($deadline - [DateTime]::UtcNow).TotalMilliseconds)
                if (-not $j.Child.Process.WaitForExit($left)) { Stop-Hard $j.Child; throw 'an exporting process hung' }
            }
            foreach ($j in $jobs) {
                $j.Child.Process.WaitForExit()
                $j.Child.Process.ExitCode | Should -Be 0 -Because "an exporting process failed: $(Get-Content -Raw $j.Child.StdErrPath -ErrorAction SilentlyContinue)"
                $listing = @(Get-CpioListing $j.Out)
                ($listing | Where-Object Name -EQ 'etc/variant').DataSha256 | Should -Be $j.Sha
                ($listing | Where-Object Name -EQ 'big.bin').Size | Should -Be 4MB
            }
        }
        finally { foreach ($j in $jobs) { if (-not $j.Child.Process.HasExited) { Stop-Hard $j.Child } } }
        $null = Assert-CacheConsistent $cache
    }
}
