# Boots archives written by Export-Initramfs under QEMU (q35, TCG, serial console) with the
# newest /boot/vmlinuz-*: a busybox image whose /init comes from its layer, exported gzip- and
# zstd-compressed, and an image whose /init comes from Set-InitramfsInit and which runs a
# script added with Add-InitramfsFile. Three boots of about 6 s each.
#
# Markers are printed with shell arithmetic ("...-$((6*7))" prints "...-42"), so the text the
# tests look for appears nowhere in the archive: it can only reach the serial console through a
# shell that really ran the script inside the guest.
#
# Not skipped when QEMU or a kernel is missing: the test rig installs them, and a boot test that
# quietly skips would let a run look green without booting anything.

Describe 'Booting exported initramfs archives under QEMU' -Tag Boot {
    BeforeAll {
        $modulePath = if ($env:INITRAMFSPS_MODULE) { $env:INITRAMFSPS_MODULE } else { "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1" }
        Import-Module $modulePath -Force
        Import-Module $PSScriptRoot/TestHelpers.psm1 -Force

        $script:Work = New-TestDirectory -Prefix 'initramfsps-boot'
        $script:OldCache = $env:INITRAMFSPS_CACHE
        $env:INITRAMFSPS_CACHE = New-TestDirectory -Parent $Work -Prefix 'cache'

        # A boot is a success when init printed its marker and powered the machine off. With
        # -no-reboot and panic=-1 a kernel panic (say, init not found or not executable) also ends
        # QEMU with exit code 0, so the clean power-off message is checked too: the kernel prints
        # "reboot: Power down" (pr_emerg, shown under `quiet`) only for poweroff(2).
        function Get-BootFailureText($Boot) {
            "QEMU exit code $($Boot.ExitCode), timed out: $($Boot.TimedOut), $($Boot.Seconds) s`n" +
            "command: $($Boot.Arguments -join ' ')`n--- serial output ---`n$($Boot.Output)`n--- stderr ---`n$($Boot.StdErr)"
        }
    }

    AfterAll {
        $env:INITRAMFSPS_CACHE = $OldCache
        if ($Work) { Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue }
    }

    Context 'an image whose /init comes from its busybox layer' {
        BeforeAll {
            $script:Guid = [guid]::NewGuid().ToString('N')
            $script:Marker = "INITRAMFSPS-BOOT-$Guid-42"
            # poweroff -f calls reboot(2) directly, so nothing has to be mounted first.
            $init = "#!/bin/sh`necho `"INITRAMFSPS-BOOT-$Guid-`$((6*7))`"`npoweroff -f`n"
            $layer = New-BusyboxLayer -Init $init
            $script:Layout = New-TestOciLayout -Path (Join-Path $Work 'layout') -Layer $layer -Tag 'busybox'
        }

        It 'boots the <Compression> archive (<Extension>), prints the marker and powers off' -ForEach @(
            @{ Compression = 'Gzip'; Extension = '.cpio.gz'; Magic = '1F8B' }
            @{ Compression = 'Zstd'; Extension = '.cpio.zst'; Magic = '28B52FFD' }
        ) {
            $archive = Join-Path $Work "boot$Extension"
            $report = Get-OciImage "oci:$($Layout.Path):busybox" | Export-Initramfs $archive

            # The file really is in the format this boot is meant to exercise.
            $report.Compression | Should -Be $Compression
            $head = [IO.File]::ReadAllBytes($archive)[0..($Magic.Length / 2 - 1)]
            [Convert]::ToHexString([byte[]]$head) | Should -Be $Magic
            # /init is the layer's script, byte for byte (an unrelated /init could print nothing).
            $listing = Get-CpioListing $archive
            $initEntry = @($listing | Where-Object Name -EQ 'init')
            $initEntry.Count | Should -Be 1
            $initEntry[0].DataSha256 | Should -Be ([Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([Text.Encoding]::UTF8.GetBytes($init))).ToLowerInvariant())

            $boot = Invoke-QemuBoot $archive -TimeoutSeconds 120
            $why = Get-BootFailureText $boot
            $boot.TimedOut | Should -BeFalse -Because $why
            $boot.ExitCode | Should -Be 0 -Because $why
            $boot.Output | Should -Match ([regex]::Escape($Marker)) -Because $why
            $boot.Output | Should -Match 'reboot: Power down' -Because $why
            $boot.Output | Should -Not -Match 'Kernel panic' -Because $why
        }
    }

    Context 'an image whose /init comes from Set-InitramfsInit and which runs a file added with Add-InitramfsFile' {
        BeforeAll {
            $script:Guid2 = [guid]::NewGuid().ToString('N')
            $script:InitMarker = "INITRAMFSPS-INIT-$Guid2-42"
            $script:AgentMarker = "INITRAMFSPS-AGENT-$Guid2-15"

            # No init in the layer: without Set-InitramfsInit, Export-Initramfs must refuse.
            $layer = New-BusyboxLayer
            $script:Layout2 = New-TestOciLayout -Path (Join-Path $Work 'layout2') -Layer $layer -Tag 'noinit'

            # The agent is 0644 on the host: only -Mode 0755 makes it runnable in the guest.
            $script:AgentHost = Join-Path $Work 'agent.sh'
            [IO.File]::WriteAllText($AgentHost, "#!/bin/sh`necho `"INITRAMFSPS-AGENT-$Guid2-`$((3*5))`"`n")
            & chmod 0644 $AgentHost

            # init runs the agent directly (exec permission and #! line needed), shows how the guest
            # sees it, and powers off.
            $script:InitText = "#!/bin/sh`necho `"INITRAMFSPS-INIT-$Guid2-`$((6*7))`"`nls -ln /usr/bin/agent`n/usr/bin/agent`necho `"agent exit status: `$?`"`npoweroff -f`n"
            $script:Archive2 = Join-Path $Work 'generated-init.cpio.gz'
        }

        It 'refuses to export the image without an /init (so the booted /init can only be the generated one)' {
            { Get-OciImage "oci:$($Layout2.Path):noinit" | Export-Initramfs (Join-Path $Work 'noinit.cpio.gz') -ErrorAction Stop } |
                Should -Throw -ErrorId 'InitMissing*'
        }

        It 'boots; init prints its marker, runs /usr/bin/agent (mode 0755, owner 0:0) which prints its own, then powers off' {
            $rootfs = Get-OciImage "oci:$($Layout2.Path):noinit" |
                Add-InitramfsFile -Path $AgentHost -Destination /usr/bin/agent -Mode '0755' |
                Set-InitramfsInit -Content $InitText
            $rootfs.GetEntry('/usr/bin/agent').Mode | Should -Be ([Convert]::ToInt32('0755', 8))
            $null = $rootfs | Export-Initramfs $Archive2

            $boot = Invoke-QemuBoot $Archive2 -TimeoutSeconds 120
            $why = Get-BootFailureText $boot
            $boot.TimedOut | Should -BeFalse -Because $why
            $boot.ExitCode | Should -Be 0 -Because $why
            $boot.Output | Should -Match ([regex]::Escape($InitMarker)) -Because $why
            $boot.Output | Should -Match ([regex]::Escape($AgentMarker)) -Because $why
            $boot.Output | Should -Match 'agent exit status: 0' -Because $why
            # busybox `ls -ln`: mode, link count, uid, gid, size, ..., name
            $boot.Output | Should -Match '-rwxr-xr-x\s+1\s+0\s+0\s+\d+\s.*/usr/bin/agent' -Because $why
            $boot.Output | Should -Match 'reboot: Power down' -Because $why
            $boot.Output | Should -Not -Match 'Kernel panic' -Because $why
            # the init marker comes before the agent's: init ran first and started the agent
            $boot.Output.IndexOf($InitMarker) | Should -BeLessThan $boot.Output.IndexOf($AgentMarker) -Because $why
        }
    }
}
