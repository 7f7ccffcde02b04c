# The cache stays within its budget and says what it holds: least recently used entries are
# evicted first (by last use, not by write time), whole (a decompressed layer with its layer
# index), never while a running command of any process leases them; decompressed copies of
# imported archives stay in a bounded area of their own; Get-OciCache says what each entry is,
# what uses it, when it was last used, and the total; Clear-OciCache -Unused removes what no
# cached image uses; a bare Clear-OciCache asks first (ConfirmImpact High).

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/RegistryHelpers.psm1 -Force
    $script:modulePath = (Resolve-Path ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1")).Path
    $script:work = New-TestDirectory -Temp -Prefix cachebudget
    $script:cache = Join-Path $work cache
    $env:INITRAMFSPS_CACHE = $cache

    function script:Reset-Cache {
        Remove-Item -Recurse -Force $cache -ErrorAction SilentlyContinue
        Remove-Item Env:INITRAMFSPS_CACHE_MAX_SIZE, Env:INITRAMFSPS_CACHE_IMPORTS_MAX_SIZE -ErrorAction SilentlyContinue
    }

    # An image in a layout directory of its own: one gzip layer with $Size random bytes in /data.bin.
    function script:New-Layout([string] $Name, [int] $Size, [int] $Seed = 1, [string] $Path = (Join-Path $work $Name)) {
        $bytes = [byte[]]::new($Size)
        [System.Random]::new($Seed).NextBytes($bytes)
        $tar = New-TestTar -Entry @(
            @{ Name = 'bin/'; Type = 'Dir' }, @{ Name = 'bin/sh'; Data = 'a shell'; Mode = '0755' },
            @{ Name = 'init'; Data = "#!/bin/sh`n"; Mode = '0755' }, @{ Name = 'data.bin'; Data = $bytes })
        New-TestOciLayout -Path $Path -Layer @(, $tar) -Tag $Name
    }

    function script:Get-Entry([string] $Digest) { @(Get-OciCache | Where-Object { "$($_.Digest)" -eq $Digest }) }

    function script:BlobPath([string] $Digest) { Join-Path $cache "blobs/sha256/$($Digest -replace '^sha256:')" }
    function script:IndexPath([string] $Digest) { Join-Path $cache "index/sha256/$($Digest -replace '^sha256:')" }

    # Makes an entry look written and last used at $When (its blob, layer index and last-use marker).
    function script:Set-Age([string] $Digest, [datetime] $When, [string] $Area = $cache) {
        $hex = $Digest -replace '^sha256:'
        foreach ($f in "blobs/sha256/$hex", "index/sha256/$hex", "used/sha256/$hex") {
            $p = Join-Path $Area $f
            if (Test-Path -LiteralPath $p) { [System.IO.File]::SetLastWriteTimeUtc($p, $When.ToUniversalTime()) }
        }
    }

    function script:Signal([int] $ProcessId, [string] $Signal) { & /bin/sh -c 'kill -s "$1" "$2"' sh $Signal "$ProcessId" }

    # Waits until a lease file of the cache names $Digest; false if $Process ended first.
    function script:Wait-Lease([string] $Digest, [System.Diagnostics.Process] $Process, [int] $TimeoutSeconds = 180) {
        $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
        while ([DateTime]::UtcNow -lt $deadline -and -not $Process.HasExited) {
            foreach ($lease in Get-ChildItem (Join-Path $cache leases) -Filter *.lease -ErrorAction SilentlyContinue) {
                if ((Get-Content -Raw -LiteralPath $lease.FullName -ErrorAction SilentlyContinue) -match [regex]::Escape($Digest)) { return $true }
            }
            Start-Sleep -Milliseconds 20
        }
        $false
    }

    # A pwsh with the module, reading $Stdin, as at an interactive prompt when -Interactive (no -NonInteractive).
    function script:Invoke-PwshWithInput([string] $Command, [string] $Stdin, [switch] $Interactive) {
        $file = Join-Path $work "child-$([guid]::NewGuid().ToString('N')).ps1"
        Set-Content -LiteralPath $file -Value "Import-Module '$modulePath'`n$Command"
        $psi = [System.Diagnostics.ProcessStartInfo]::new([System.Environment]::ProcessPath)
        if ([System.IO.Path]::GetFileNameWithoutExtension([System.Environment]::ProcessPath) -eq 'dotnet') {
            $psi.ArgumentList.Add([System.Environment]::GetCommandLineArgs()[0])
        }
        foreach ($a in @('-NoProfile') + @(if (-not $Interactive) { '-NonInteractive' }) + @('-File', $file)) { $psi.ArgumentList.Add($a) }
        $psi.UseShellExecute = $false
        $psi.RedirectStandardInput = $true
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $psi.Environment['INITRAMFSPS_CACHE'] = $cache
        $p = [System.Diagnostics.Process]::Start($psi)
        $p.StandardInput.Write($Stdin)
        $p.StandardInput.Close()
        $out = $p.StandardOutput.ReadToEndAsync(); $err = $p.StandardError.ReadToEndAsync()
        if (-not $p.WaitForExit(120000)) { $p.Kill($true); throw "The child pwsh did not end: $Command" }
        $p.WaitForExit()
        [pscustomobject]@{ ExitCode = $p.ExitCode; Output = $out.Result + $err.Result }
    }

    # Three images whose expanded layers are each about 1 MB in the cache.
    $script:a = New-Layout a 1MB 1
    $script:b = New-Layout b 1MB 2
    $script:c = New-Layout c 1MB 3
}

AfterAll {
    Remove-Item Env:INITRAMFSPS_CACHE_MAX_SIZE, Env:INITRAMFSPS_CACHE_IMPORTS_MAX_SIZE -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'A cache over its budget' {
    It 'evicts what was used least recently, not what was written first, a decompressed layer with its index' {
        Reset-Cache
        $null = Get-OciImage $a.Reference | Expand-OciLayers
        Set-Age $a.DiffIds[0] (Get-Date).AddHours(-3)
        $null = Get-OciImage $b.Reference | Expand-OciLayers
        Set-Age $b.DiffIds[0] (Get-Date).AddHours(-2)
        # a was written first, but an expansion reads it (its layer index) now: b is the least recently used.
        $null = Get-OciImage $a.Reference | Expand-OciLayers
        $entryA = Get-Entry $a.DiffIds[0]
        $entryB = Get-Entry $b.DiffIds[0]
        $entryA.LastWriteTime | Should -BeLessThan $entryB.LastWriteTime
        $entryA.LastUsed | Should -BeGreaterThan $entryB.LastUsed
        $entryA.LastUsed | Should -BeGreaterThan (Get-Date).AddMinutes(-5)

        # Room for two of the three layers.
        $env:INITRAMFSPS_CACHE_MAX_SIZE = [long](2.5 * ($entryA.Size + $entryA.IndexSize))
        $verbose = Get-OciImage $c.Reference | Expand-OciLayers -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        ($verbose.Message -join "`n") | Should -Match "Evicted $([regex]::Escape($b.DiffIds[0]))"
        Test-Path (BlobPath $b.DiffIds[0]) | Should -BeFalse
        Test-Path (IndexPath $b.DiffIds[0]) | Should -BeFalse -Because 'a layer index goes with its tar'
        foreach ($kept in $a, $c) {
            Test-Path (BlobPath $kept.DiffIds[0]) | Should -BeTrue
            Test-Path (IndexPath $kept.DiffIds[0]) | Should -BeTrue
        }
        (Get-OciCache -Summary).Size | Should -BeLessOrEqual ([long]$env:INITRAMFSPS_CACHE_MAX_SIZE)
        # What is left still expands from the cache, and b decompresses again when asked for.
        (Get-OciImage $b.Reference | Expand-OciLayers).GetEntry('/data.bin').Size | Should -Be 1MB
    }

    It 'warns about a budget it cannot read, and keeps the default' {
        Reset-Cache
        $env:INITRAMFSPS_CACHE_MAX_SIZE = 'lots'
        $warnings = $null
        $null = Get-OciImage $a.Reference | Expand-OciLayers -WarningVariable warnings -WarningAction SilentlyContinue
        ($warnings -join "`n") | Should -Match 'INITRAMFSPS_CACHE_MAX_SIZE'
        Test-Path (BlobPath $a.DiffIds[0]) | Should -BeTrue
        (Get-OciCache -Summary -WarningAction SilentlyContinue).MaxSize | Should -Be 10GB
        $env:INITRAMFSPS_CACHE_MAX_SIZE = '1.5GB'
        (Get-OciCache -Summary).MaxSize | Should -Be 1.5GB
        (Get-OciCache -Summary).ImportMaxSize | Should -Be ([long](1.5GB / 4))
    }
}

Describe 'Entries a running export uses' {
    BeforeAll {
        # Large enough that a gzip -9 export runs for a while.
        $script:d = New-Layout d 24MB 4
        $script:e = New-Layout e 64KB 5
        $script:exportCommand = {
            param([string] $Out)
            "Import-Module '$modulePath'; `$null = Get-OciImage '$($d.Reference)' | Export-Initramfs '$Out' -CompressionLevel 9 -Workers 1 -ErrorAction Stop; 'exported'"
        }
    }

    It 'are kept by evictions and removals in another process while the export runs, and it finishes' {
        Reset-Cache
        $null = Get-OciImage $d.Reference | Expand-OciLayers
        $null = Get-OciImage $e.Reference | Expand-OciLayers
        Set-Age $d.DiffIds[0] (Get-Date).AddHours(-2)
        Set-Age $e.DiffIds[0] (Get-Date).AddHours(-1)
        $out = Join-Path $work 'running.cpio.gz'
        $child = Start-PwshProcess -Command (& $exportCommand $out) -Environment @{ INITRAMFSPS_CACHE = $cache; INITRAMFSPS_CACHE_MAX_SIZE = $null }
        try {
            Wait-Lease $d.DiffIds[0] $child.Process | Should -BeTrue -Because "the export leases the layer it reads: $(Get-Content -Raw $child.StdErrPath -ErrorAction SilentlyContinue)"
            Start-Sleep -Milliseconds 300
            Signal $child.Process.Id STOP
            $child.Process.HasExited | Should -BeFalse -Because 'the export is still running'

            # Everything may go, and d is the least recently used: only its lease keeps it.
            $env:INITRAMFSPS_CACHE_MAX_SIZE = 0
            Clear-OciCache -Unused
            Test-Path (BlobPath $e.DiffIds[0]) | Should -BeFalse -Because 'what no one uses went'
            Test-Path (BlobPath $d.DiffIds[0]) | Should -BeTrue
            Test-Path (IndexPath $d.DiffIds[0]) | Should -BeTrue
            (Get-Entry $d.DiffIds[0]).InUse | Should -BeTrue
            $err = $null
            Clear-OciCache -Digest $d.DiffIds[0] -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'CacheEntryInUse,*'
            Test-Path (BlobPath $d.DiffIds[0]) | Should -BeTrue
        }
        finally {
            Signal $child.Process.Id CONT
            $exited = $child.Process.WaitForExit(300000)
        }
        $exited | Should -BeTrue
        Get-Content -Raw $child.StdOutPath | Should -Match 'exported' -Because (Get-Content -Raw $child.StdErrPath)
        $data = @(Get-CpioListing $out | Where-Object Name -EQ 'data.bin')
        $data.Size | Should -Be 24MB
        # The lease ended with the export: now nothing keeps d.
        Clear-OciCache -Unused
        Test-Path (BlobPath $d.DiffIds[0]) | Should -BeFalse
    }

    It 'are not pinned forever by an export that was killed' {
        Reset-Cache
        $null = Get-OciImage $d.Reference | Expand-OciLayers
        $out = Join-Path $work 'killed.cpio.gz'
        $child = Start-PwshProcess -Command (& $exportCommand $out) -Environment @{ INITRAMFSPS_CACHE = $cache; INITRAMFSPS_CACHE_MAX_SIZE = $null }
        Wait-Lease $d.DiffIds[0] $child.Process | Should -BeTrue
        Signal $child.Process.Id KILL
        $child.Process.WaitForExit(60000) | Should -BeTrue
        @(Get-ChildItem (Join-Path $cache leases) -Filter *.lease) | Should -Not -BeNullOrEmpty -Because 'a killed process cannot clean up'
        (Get-Entry $d.DiffIds[0]).InUse | Should -BeFalse -Because 'no live process holds the lease'

        $env:INITRAMFSPS_CACHE_MAX_SIZE = 0
        Clear-OciCache -Unused
        Test-Path (BlobPath $d.DiffIds[0]) | Should -BeFalse
        @(Get-ChildItem (Join-Path $cache leases) -Filter *.lease) | Should -BeNullOrEmpty -Because 'the dead lease was swept'
    }
}

Describe 'Decompressed copies of imported archives' {
    It 'go to the imports area, whose own budget evicts them before any image' {
        Reset-Cache
        $null = Get-OciImage $a.Reference | Expand-OciLayers
        Set-Age $a.DiffIds[0] (Get-Date).AddHours(-5)
        $archives = foreach ($l in $b, $c) {
            $path = Join-Path $work "$($l.Tag).cpio.zst"
            $null = Get-OciImage $l.Reference | Export-Initramfs $path
            $path
        }
        $first = Import-Initramfs $archives[0]
        $parts = @(Get-OciCache | Where-Object Kind -EQ Part)
        $parts | Should -Not -BeNullOrEmpty
        foreach ($p in $parts) {
            $p.Path | Should -BeLike (Join-Path $cache 'imports/*')
            @($p.UsedBy) | Should -Be @($archives[0])
            Test-Path (BlobPath $p.Digest.ToString()) | Should -BeFalse -Because 'no part lands among the images'
            Set-Age $p.Digest.ToString() (Get-Date).AddHours(-1) (Join-Path $cache imports)
        }
        $firstSize = ($parts | Measure-Object Size -Sum).Sum

        $env:INITRAMFSPS_CACHE_IMPORTS_MAX_SIZE = [long](1.5 * $firstSize)
        $second = Import-Initramfs $archives[1]
        $after = @(Get-OciCache | Where-Object Kind -EQ Part)
        @($after | ForEach-Object { "$($_.Digest)" }) | Should -Not -Contain "$($parts[0].Digest)"
        @($after | ForEach-Object { $_.UsedBy }) | Should -Be @($after | ForEach-Object { $archives[1] })
        Test-Path (BlobPath $a.DiffIds[0]) | Should -BeTrue -Because 'imports never push an image out, however old'
        ($second | Export-Initramfs (Join-Path $work 'again.cpio')).EntryCount | Should -BeGreaterThan 0
    }
}

Describe 'Get-OciCache and Clear-OciCache -Unused on a cache of tagged images' {
    BeforeAll {
        Reset-Cache
        # The cache is shaped like an OCI layout: images written into it are cached images once a tag points at them.
        $script:amd = New-Layout amd 4KB 6 -Path $cache
        $script:arm = New-Layout arm 4KB 7 -Path $cache
        $script:index = New-TestOciIndex -Path $cache -Tag multi -Manifest @(
            @{ Digest = $amd.ManifestDigest; Platform = @{ os = 'linux'; architecture = 'amd64' } },
            @{ Digest = $arm.ManifestDigest; Platform = @{ os = 'linux'; architecture = 'arm64' } })
        $store = New-EngineObject InitramfsPS.Cache.BlobStore -Arguments $cache
        $store.WriteRef('docker.io', 'library/alpine', '3.20', [InitramfsPS.Images.Digest]::Parse($index.IndexDigest))
        $script:rootfs = Get-OciImage alpine:3.20 -Offline -Platform linux/amd64 | Expand-OciLayers
        $script:archive = Join-Path $work 'tagged.cpio.zst'
        # No part cache: the kept parts would be entries no image uses (Rebuild.Tests covers them).
        $null = $rootfs | Export-Initramfs $archive -NoPartCache
        $null = Import-Initramfs $archive
    }

    It 'says what each entry is, which images use it, when it was last used, and the total' {
        $entries = @(Get-OciCache)
        $byDigest = @{}
        foreach ($entry in $entries) { $byDigest["$($entry.Digest)"] = $entry }
        $byDigest[$index.IndexDigest].Kind | Should -Be ImageIndex
        @($byDigest[$index.IndexDigest].UsedBy) | Should -Be @('alpine:3.20')
        $byDigest[$amd.ManifestDigest].Kind | Should -Be Manifest
        @($byDigest[$amd.ManifestDigest].UsedBy) | Should -Be @('alpine:3.20 (linux/amd64)')
        @($byDigest[$arm.ManifestDigest].UsedBy) | Should -Be @('alpine:3.20 (linux/arm64)')
        $byDigest[$amd.ConfigDigest].Kind | Should -Be Config
        $byDigest[$amd.LayerDigests[0]].Kind | Should -Be Layer
        $byDigest[$amd.LayerDigests[0]].Description | Should -Be 'layer 1 of alpine:3.20 (linux/amd64)'
        $decompressed = $byDigest[$amd.DiffIds[0]]
        $decompressed.Kind | Should -Be DecompressedLayer
        @($decompressed.UsedBy) | Should -Be @('alpine:3.20 (linux/amd64)')
        $decompressed.IndexPath | Should -Be (IndexPath $amd.DiffIds[0])
        $decompressed.Size | Should -Be (Get-Item (BlobPath $amd.DiffIds[0])).Length
        $decompressed.IndexSize | Should -Be (Get-Item (IndexPath $amd.DiffIds[0])).Length
        $parts = @($entries | Where-Object Kind -EQ Part)
        $parts | Should -Not -BeNullOrEmpty
        @($parts[0].UsedBy) | Should -Be @($archive)
        foreach ($entry in $entries) {
            $entry.LastUsed | Should -BeOfType [datetime]
            $entry.LastUsed | Should -BeGreaterThan (Get-Date).AddHours(-1)
            $entry.InUse | Should -BeFalse
        }
        $arm64Layer = $byDigest[$arm.LayerDigests[0]]
        $arm64Layer.LastUsed | Should -BeLessThan $decompressed.LastUsed -Because 'only the amd64 image was expanded'

        $summary = Get-OciCache -Summary
        $summary | Should -BeOfType ([InitramfsPS.Cache.CacheSummary])
        $summary.Count | Should -Be $entries.Count
        $summary.Size | Should -Be (($entries | Measure-Object Size -Sum).Sum + ($entries | Measure-Object IndexSize -Sum).Sum)
        $summary.ImportSize | Should -Be ($parts | Measure-Object Size -Sum).Sum
        $summary.MaxSize | Should -Be 10GB
        $summary.UnusedCount | Should -Be 0
        $text = $summary | Out-String -Width 80
        $text | Should -Match 'MaxSize\s+: 10\.7 GB \(10737418240 bytes\)'
    }

    It 'removes with -Unused what no cached image uses, and nothing with -WhatIf' {
        $other = New-Layout other 4KB 8
        $null = Get-OciImage $other.Reference | Expand-OciLayers          # from a layout: no cached image uses it
        $stray = [byte[]](1..200)
        $strayHex = [System.Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData($stray)).ToLowerInvariant()
        [System.IO.File]::WriteAllBytes((BlobPath "sha256:$strayHex"), $stray)
        $gone = Join-Path $work 'gone.cpio.zst'
        $marker = Join-Path $work marker
        Set-Content -LiteralPath $marker -Value 'another archive'
        $null = $rootfs | Add-InitramfsFile $marker /etc/marker | Export-Initramfs $gone
        $null = Import-Initramfs $gone
        Remove-Item $gone                                                    # its parts: used by no archive now
        $before = @(Get-OciCache)
        $unused = @($before | Where-Object { $_.UsedBy.Count -eq 0 })
        $unusedDigests = @($unused | ForEach-Object { "$($_.Digest)" })
        $unusedDigests | Should -Contain $other.DiffIds[0]
        $unusedDigests | Should -Contain "sha256:$strayHex"
        @($unused | Where-Object Kind -EQ Part) | Should -Not -BeNullOrEmpty
        (Get-OciCache -Summary).UnusedCount | Should -Be $unused.Count

        Clear-OciCache -Unused -WhatIf
        @(Get-OciCache).Count | Should -Be $before.Count

        Clear-OciCache -Unused
        $after = @(Get-OciCache)
        $after.Count | Should -Be ($before.Count - $unused.Count)
        @($after | ForEach-Object { "$($_.Digest)" } | Where-Object { $_ -in $unusedDigests }) | Should -BeNullOrEmpty
        @($after | Where-Object { $_.UsedBy.Count -eq 0 }) | Should -BeNullOrEmpty
        # The cached image is whole: it resolves offline and exports.
        (Get-OciImage alpine:3.20 -Offline -Platform linux/amd64 | Export-Initramfs (Join-Path $work 'offline.cpio')).EntryCount | Should -BeGreaterThan 0
    }
}

Describe 'Clear-OciCache on its own' {
    BeforeAll {
        function script:Fill {
            Reset-Cache
            $null = Get-OciImage $a.Reference | Expand-OciLayers
            @(Get-OciCache).Count | Should -BeGreaterThan 0
        }
    }

    It 'has ConfirmImpact High' {
        $attribute = (Get-Command Clear-OciCache).ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0]
        $attribute.ConfirmImpact | Should -Be High
        $attribute.SupportsShouldProcess | Should -BeTrue
    }

    It 'fails in a non-interactive session, deleting nothing, unless -Confirm:$false or -Force says not to ask' {
        Fill
        $r = Invoke-ChildPwsh "Import-Module '$modulePath'; Clear-OciCache" -Environment @{ INITRAMFSPS_CACHE = $cache }
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -Match 'NonInteractive'
        Test-Path (BlobPath $a.DiffIds[0]) | Should -BeTrue

        $r = Invoke-ChildPwsh "Import-Module '$modulePath'; Clear-OciCache -Confirm:`$false" -Environment @{ INITRAMFSPS_CACHE = $cache }
        $r.ExitCode | Should -Be 0 -Because $r.Output
        @(Get-OciCache) | Should -BeNullOrEmpty

        Fill
        $r = Invoke-ChildPwsh "Import-Module '$modulePath'; Clear-OciCache -Force" -Environment @{ INITRAMFSPS_CACHE = $cache }
        $r.ExitCode | Should -Be 0 -Because $r.Output
        @(Get-OciCache) | Should -BeNullOrEmpty
    }

    It 'asks at an interactive prompt, and does what the answer says' {
        Fill
        $r = Invoke-PwshWithInput 'Clear-OciCache' "n`n" -Interactive
        $r.Output | Should -Match 'Remove all'
        Test-Path (BlobPath $a.DiffIds[0]) | Should -BeTrue -Because "the answer was no: $($r.Output)"
        $r = Invoke-PwshWithInput 'Clear-OciCache' "y`n" -Interactive
        Test-Path (BlobPath $a.DiffIds[0]) | Should -BeFalse -Because "the answer was yes: $($r.Output)"
    }

    It 'removes piped entries and unused ones without asking, even in a non-interactive session' {
        Fill
        $r = Invoke-ChildPwsh "Import-Module '$modulePath'; Get-OciCache | Clear-OciCache; Clear-OciCache -Unused; 'done'" -Environment @{ INITRAMFSPS_CACHE = $cache }
        $r.ExitCode | Should -Be 0 -Because $r.Output
        @(Get-OciCache) | Should -BeNullOrEmpty
    }
}
