*** Settings ***
Documentation     hello_world on mps2-an385 under emulation.
Resource          hello_world.resource
Suite Setup       Build Hello World For mps2-an385
Test Teardown     Reset Emulation


*** Test Cases ***
Boots And Prints The Ready Banner
    Banner Names mps2-an385

Seven Inferences Equal TFLM
    Seven Inferences On mps2-an385 Equal TFLM
