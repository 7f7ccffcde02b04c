# Issue 16, "Rebuild only what changed": an export copies the parts an earlier export compressed
# from the part cache, and a change re-encodes only the parts that hold it. The archive is the same
# bytes with an empty or a warm part cache, for any -Workers; it boots; the cache cmdlets list,
# verify and clear the compressed parts.

BeforeDiscovery {
    $script:isRoot = (id -u) -eq '0'
    $script:hasDebianTools = $null -ne (Get-Command mmdebstrap -ErrorAction SilentlyContinue) -and $null -ne (Get-Command umoci -ErrorAction SilentlyContinue)
}

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module "$PSScriptRoot/TestHelpers.psm1" -Force
    Import-Module "$PSScriptRoot/DebianImage.psm1" -Force
    $script:work = New-TestDirectory -Prefix 'rebuild'
    $script:oldCache = $env:INITRAMFSPS_CACHE
    $env:INITRAMFSPS_CACHE = Join-Path $work 'cache'

    # Two different 1 MiB agents, of fixed bytes.
    $random = [Random]::new(16)
    foreach ($name in 'agentA', 'agentB') {
        $bytes = [byte[]]::new(1MB)
        $random.NextBytes($bytes)
        [IO.File]::WriteAllBytes((Join-Path $work $name), $bytes)
    }
    $script:agentA = Join-Path $work 'agentA'
    $script:agentB = Join-Path $work 'agentB'

    function Export-Twice {
        # The same rootfs exported with the part cache and with -NoPartCache: the two must be the same bytes.
        param($Rootfs, [string] $Name, [string] $Extension = 'cpio.zst', [hashtable] $More = @{})
        $withCache = $Rootfs | Export-Initramfs (Join-Path $work "$Name.$Extension") -WarningAction SilentlyContinue @More
        $without = $Rootfs | Export-Initramfs (Join-Path $work "$Name-nocache.$Extension") -NoPartCache -WarningAction SilentlyContinue @More
        $withCache.Sha256 | Should -Be $without.Sha256 -Because 'a part copied from the cache is the bytes its compression gives'
        $without.PartsReused | Should -Be 0
        $without.PartsCompressed | Should -Be $without.PartCount
        $withCache
    }
}

AfterAll {
    $env:INITRAMFSPS_CACHE = $oldCache
    if ($work -and (Test-Path -LiteralPath $work)) { Remove-Item -LiteralPath $work -Recurse -Force }
}

Describe 'Rebuilding the Debian minbase image with a new agent' -Skip:(-not ($isRoot -and $hasDebianTools)) {
    BeforeAll {
        $deb = Get-DebianMinbaseLayout
        $script:base = Get-OciImage $deb.Reference | Expand-OciLayers
    }

    It 'compresses every part the first time and copies every part the second' {
        $first = $base | Export-Initramfs (Join-Path $work 'deb-1.cpio.zst') -WarningAction SilentlyContinue
        $first.PartsReused | Should -Be 0
        $first.PartsCompressed | Should -Be $first.PartCount
        $first.BytesCompressed | Should -Be $first.UncompressedSize
        $second = $base | Export-Initramfs (Join-Path $work 'deb-2.cpio.zst') -WarningAction SilentlyContinue
        $second.Sha256 | Should -Be $first.Sha256
        $second.PartsReused | Should -Be $second.PartCount
        $second.PartsCompressed | Should -Be 0
        $second.BytesCompressed | Should -Be 0
    }

    It 'with agent B after agent A, re-encodes only the part that holds the agent (<Extension>)' -ForEach @(
        @{ Extension = 'cpio.zst' }
        @{ Extension = 'cpio.gz' }
    ) {
        $a = Export-Twice ($base | Add-InitramfsFile $agentA /usr/local/bin/agent) "deb-agentA-$($Extension -replace '\W', '')" $Extension
        $b = Export-Twice ($base | Add-InitramfsFile $agentB /usr/local/bin/agent) "deb-agentB-$($Extension -replace '\W', '')" $Extension
        $b.PartCount | Should -BeGreaterThan 20
        $b.PartsCompressed | Should -BeIn 1, 2 -Because "only the agent's part (and at most the next) changed; $($b.PartCount) parts"
        $b.PartsReused | Should -Be ($b.PartCount - $b.PartsCompressed)
        $b.BytesCompressed | Should -BeLessThan (3 * 8MB)
    }

    It 'with Set-InitramfsInit after Add-InitramfsFile, re-encodes only the parts of /init and of the agent' {
        $withAgent = $base | Add-InitramfsFile $agentA /usr/local/bin/agent
        $null = Export-Twice $withAgent 'deb-agent'
        $init = Export-Twice ($withAgent | Set-InitramfsInit -Command /usr/local/bin/agent) 'deb-agent-init'
        $init.PartsCompressed | Should -BeIn 1, 2 -Because "/init is in the first part; $($init.PartCount) parts"
    }

    It 'writes the same bytes with an empty or a warm part cache for any -Workers' {
        $r = $base | Add-InitramfsFile $agentB /usr/local/bin/agent2
        $hashes = foreach ($workers in 1, 3) {
            $env:INITRAMFSPS_CACHE = Join-Path $work "cache-workers-$workers"
            try {
                $cold = $r | Export-Initramfs (Join-Path $work "w$workers-cold.cpio.zst") -Workers $workers -WarningAction SilentlyContinue
                $warm = $r | Export-Initramfs (Join-Path $work "w$workers-warm.cpio.zst") -Workers (4 - $workers) -WarningAction SilentlyContinue
                $cold.PartsReused | Should -Be 0
                $warm.PartsReused | Should -Be $warm.PartCount
                $cold.Sha256; $warm.Sha256
            }
            finally { $env:INITRAMFSPS_CACHE = Join-Path $work 'cache' }
        }
        @($hashes | Select-Object -Unique).Count | Should -Be 1
    }
}

Describe 'The part cache in the cache cmdlets' {
    BeforeAll {
        $script:layout = New-TestOciLayout (Join-Path $work 'busybox') -Layer (, (New-BusyboxLayer -Init "#!/bin/sh`necho REBUILD-OK`npoweroff -f`n" -SystemDirectories)) -Tag 'v1'
        $script:bb = Get-OciImage $layout.Reference | Expand-OciLayers
        $env:INITRAMFSPS_CACHE = Join-Path $work 'cache-cmdlets'
    }
    AfterAll { $env:INITRAMFSPS_CACHE = Join-Path $work 'cache' }

    It 'lists the compressed parts an export kept, and Clear-OciCache -Unused removes them' {
        $first = $bb | Export-Initramfs (Join-Path $work 'bb.cpio.zst')
        $parts = @(Get-OciCache | Where-Object Kind -EQ 'CompressedPart')
        $parts.Count | Should -Be $first.PartCount
        Clear-OciCache -Unused -Confirm:$false
        @(Get-OciCache | Where-Object Kind -EQ 'CompressedPart').Count | Should -Be 0
        $again = $bb | Export-Initramfs (Join-Path $work 'bb.cpio.zst')
        $again.PartsReused | Should -Be 0
        $again.Sha256 | Should -Be $first.Sha256
    }

    It 'compresses again, to the same bytes, a part whose cached blob was changed, and removes it' {
        $first = $bb | Export-Initramfs (Join-Path $work 'bb2.cpio.zst')
        $part = @(Get-OciCache | Where-Object Kind -EQ 'CompressedPart')[0]
        $bytes = [IO.File]::ReadAllBytes($part.Path)
        $bytes[$bytes.Length - 5] = $bytes[$bytes.Length - 5] -bxor 0x55
        [IO.File]::WriteAllBytes($part.Path, $bytes)
        $again = $bb | Export-Initramfs (Join-Path $work 'bb3.cpio.zst')
        $again.Sha256 | Should -Be $first.Sha256
        $again.PartsCompressed | Should -Be 1
        $again.PartsReused | Should -Be ($again.PartCount - 1)
        @(Get-OciCache -Verify | Where-Object Valid -EQ $false).Count | Should -Be 0
    }

    It 'boots a rebuilt archive under QEMU' {
        # Three 3 MiB files after busybox make several parts; the agent then changes one of them.
        $data = New-TestDirectory -Parent $work -Prefix 'data'
        $random = [Random]::new(17)
        foreach ($i in 1..3) {
            $bytes = [byte[]]::new(3MB)
            $random.NextBytes($bytes)
            [IO.File]::WriteAllBytes((Join-Path $data "d$i"), $bytes)
        }
        $withData = $bb | Add-InitramfsFile (Join-Path $data '*') /srv/
        $null = $withData | Export-Initramfs (Join-Path $work 'bb-data.cpio.zst')
        $rebuilt = $withData | Add-InitramfsFile $agentA /usr/local/bin/agent | Export-Initramfs (Join-Path $work 'bb-agent.cpio.zst')
        $rebuilt.PartsReused | Should -BeGreaterThan 0
        $rebuilt.PartsCompressed | Should -BeGreaterThan 0
        $boot = Invoke-QemuBoot $rebuilt.Path -TimeoutSeconds 120
        $boot.TimedOut | Should -BeFalse
        $boot.Output | Should -Match 'REBUILD-OK'
    }
}
